// From peer changes to a converged kernel, the part every backend shares: the changes go into
// the desired state (desired.ts), the kernel tables' pending sets become one plan (planner.ts),
// the kernel channel runs it (channel.ts: netlink, or iproute2), and each operation's outcome
// moves its entry out of the pending sets. The channel's notifications (netlink) write into the
// tables' dataplane view as they come, so drift shows up in the pending sets at once. The backends differ only in what they set up around it (a vxlan device, or
// nothing for host-gw).
//
// The dataplane views start from a kernel dump and then follow each operation's outcome,
// so a lease event costs a plan and a batch of exactly the changed entries, with no dump. The
// kernel is read again only on a resync, or after any refused or uncertain operation (the
// views may then be wrong, e.g. an entry deleted by hand or a device that vanished).
import type { Logger } from '../log.js';
import type { KernelChannel, KernelEvent } from './channel.js';
import { DesiredPeers } from './desired.js';
import { judgeKernelEvent, type DriftVerdict } from './drift.js';
import type { KernelState, ModelContext } from './model.js';
import type { ObserveTargets } from './observe.js';
import { applyResults, kernelTables, planPending, replaceDataplane, type KernelTables, type Op, type RouteConflict } from './planner.js';
import type { SkipReporter } from './skips.js';
import type { KernelOpCounts, Peer, PeerDelta, ReconcileReport } from './types.js';

export interface ConvergeResult {
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  /** Route adds or replaces not applied: peers not (or no longer correctly) routed. */
  unrouted: number;
  /** Time spent waiting for the kernel (dumps and operations). */
  kernelMs: number;
  /** Desired routes left out because a route weft does not own holds their destination. */
  conflicts: RouteConflict[];
}

export class Converger {
  /** Whether the tables' dataplane views can be trusted to match the kernel. */
  private trusted = false;
  private refusing = false;

  constructor(
    private readonly channel: KernelChannel,
    private readonly targets: ObserveTargets,
    private readonly log: Logger,
    private readonly tables: KernelTables,
  ) {}

  /** Forget what the kernel holds: the next converge() reads it first. */
  invalidate(): void {
    this.trusted = false;
  }

  /**
   * A kernel notification: it updates the tables' dataplane view (so the pending sets hold any
   * drift at once) and says whether the kernel drifted from the desired state (weft's own
   * changes never do). The next converge() repairs it.
   */
  noteKernelEvent(e: KernelEvent): DriftVerdict {
    if (!this.trusted) return { kind: 'none' }; // the next converge reads the kernel anyway
    const t = this.tables;
    const believed: KernelState = { routes: t.routes.dataplaneView(), neighs: t.neighs.dataplaneView(), fdb: t.fdb.dataplaneView(), foreign: t.foreign };
    // Read only: judgeKernelEvent writes to `believed`, never to `desired`.
    const desired = { routes: t.routes.desiredView(), neighs: t.neighs.desiredView(), fdb: t.fdb.desiredView() } as KernelState;
    const v = judgeKernelEvent(believed, desired, this.targets, e);
    if (v.kind === 'reread') this.trusted = false;
    return v;
  }

  async converge(resync: boolean): Promise<ConvergeResult> {
    let kernelMs = 0;
    if (resync || !this.trusted) {
      const t0 = performance.now();
      replaceDataplane(this.tables, await this.channel.observe(this.targets));
      kernelMs += performance.now() - t0;
      this.trusted = true;
    }
    const conflicts: RouteConflict[] = [];
    const ops = planPending(this.tables, conflicts);
    if (ops.length === 0) {
      this.refusing = false;
      return { operations: 0, failures: 0, byKind: countByKind([], []), unrouted: 0, kernelMs, conflicts };
    }
    const t0 = performance.now();
    let r;
    try {
      r = await this.channel.apply(ops);
    } catch (err) {
      // Thrown half-way: the next call reads the kernel instead of trusting the tables.
      this.trusted = false;
      throw err;
    }
    kernelMs += performance.now() - t0;
    applyResults(this.tables, ops, r.ok);
    // A refusal (or a notification meanwhile that the view is lost) makes the next call read the kernel.
    if (r.failures > 0) this.trusted = false;
    if (r.failures > 0) {
      // Warn once per streak of refusals; the retries that follow log at debug.
      const detail = { failures: r.failures, operations: ops.length, errors: r.errors.join('; ') };
      if (this.refusing) this.log.debug('kernel refused some dataplane operations again', detail);
      else this.log.warn('kernel refused some dataplane operations; will re-read the kernel and retry', detail);
      this.refusing = true;
    } else {
      this.refusing = false;
    }
    const unrouted = ops.reduce((n, op, i) => n + (op.kind === 'route' && op.action === 'replace' && !r.ok[i] ? 1 : 0), 0);
    return { operations: ops.length - r.failures, failures: r.failures, byKind: countByKind(ops, r.ok), unrouted, kernelMs, conflicts };
  }
}

/** One backend's peers and kernel entries: desired per peer, against the kernel, in one set of tables. */
export class PeerSync {
  readonly desired: DesiredPeers;
  readonly converger: Converger;

  constructor(
    channel: KernelChannel,
    targets: ObserveTargets,
    log: Logger,
    private readonly skips: SkipReporter,
  ) {
    const tables = kernelTables();
    this.desired = new DesiredPeers(tables);
    this.converger = new Converger(channel, targets, log, tables);
  }

  /** The changes that take the peers known now to `peers` (unchanged peers: the same objects). O(N). */
  deltaTo(peers: readonly Peer[]): PeerDelta {
    const delta = new Map<string, Peer | undefined>();
    const listed = new Set<string>();
    for (const p of peers) {
      listed.add(p.key);
      if (this.desired.peer(p.key) !== p) delta.set(p.key, p);
    }
    for (const key of this.desired.keys()) if (!listed.has(key)) delta.set(key, undefined);
    return delta;
  }

  /** The model changes only (no kernel work): pure, and cheap enough to run before any I/O. */
  model(ctx: ModelContext, delta: PeerDelta): void {
    this.skips.update(this.desired.update(ctx, delta));
  }

  /** The conflicts last reported, by route key: unchanged ones cost nothing more (they stay pending). */
  private conflictKeys = '';

  private reportConflicts(conflicts: readonly RouteConflict[]): void {
    const keys = conflicts.map((c) => c.key).join(',');
    if (keys === this.conflictKeys) return;
    this.conflictKeys = keys;
    this.skips.reportRouteConflicts(
      conflicts.flatMap(({ key, route, by }) => {
        const reason = `a route to ${by.dst} that weft did not create holds it (${[by.type !== 'unicast' ? by.type : '', by.dev ? `dev ${by.dev}` : '', `proto ${by.proto ?? 'unknown'}`].filter(Boolean).join(' ')}); leaving that route alone`;
        const peers = [...this.desired.routeClaimants(key)];
        return (peers.length > 0 ? peers : [route.dst.toString()]).map((peer) => ({ key: peer, reason }));
      }),
    );
  }

  /** Converges the kernel; `startedAt` is the backend call's performance.now(), so `ms` covers its setup too. */
  async converge(resync: boolean, startedAt: number): Promise<{ failures: number; report: ReconcileReport }> {
    const result = await this.converger.converge(resync);
    this.reportConflicts(result.conflicts);
    return {
      failures: result.failures,
      report: {
        operations: result.operations,
        failures: result.failures,
        byKind: result.byKind,
        skipped: this.skips.count,
        routeConflicts: this.skips.routeConflicts,
        peersProgrammed: Math.max(0, this.desired.modelled - result.unrouted - result.conflicts.length),
        ms: performance.now() - startedAt,
        kernelMs: result.kernelMs,
      },
    };
  }
}

export function countByKind(ops: readonly Op[], ok: readonly boolean[]): KernelOpCounts {
  const c: KernelOpCounts = { route: { ok: 0, failed: 0 }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
  ops.forEach((op, i) => {
    if (ok[i]) c[op.kind].ok++;
    else c[op.kind].failed++;
  });
  return c;
}
