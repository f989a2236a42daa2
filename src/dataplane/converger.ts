// From peer changes to a converged kernel, the part every backend shares: the changes go into
// the desired state (desired.ts), the kernel tables' pending sets become one plan (planner.ts),
// the executor runs it (batch.ts), and each operation's outcome moves its entry out of the
// pending sets. The backends differ only in what they set up around it (a vxlan device, or
// nothing for host-gw).
//
// The dataplane views start from a kernel dump and then follow each batch's per-line outcome,
// so a lease event costs a plan and a batch of exactly the changed entries, with no dump. The
// kernel is read again only on a resync, or after any refused or uncertain operation (the
// views may then be wrong, e.g. an entry deleted by hand or a device that vanished).
import type { Logger } from '../log.js';
import { execute } from './batch.js';
import { DesiredPeers } from './desired.js';
import type { IpRunner } from './ipcmd.js';
import type { ModelContext } from './model.js';
import { observe, type ObserveTargets } from './observe.js';
import { applyResults, kernelTables, planPending, replaceDataplane, type KernelTables, type Op } from './planner.js';
import type { SkipReporter } from './skips.js';
import type { KernelOpCounts, Peer, PeerDelta, ReconcileReport } from './types.js';

export interface ConvergeResult {
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  /** Route adds or replaces not applied: peers not (or no longer correctly) routed. */
  unrouted: number;
  /** Time spent waiting for the kernel (dumps and batches). */
  kernelMs: number;
}

export class Converger {
  /** Whether the tables' dataplane views can be trusted to match the kernel. */
  private trusted = false;
  private refusing = false;

  constructor(
    private readonly runner: IpRunner,
    private readonly targets: ObserveTargets,
    private readonly log: Logger,
    private readonly tables: KernelTables,
  ) {}

  /** Forget what the kernel holds: the next converge() reads it first. */
  invalidate(): void {
    this.trusted = false;
  }

  async converge(resync: boolean): Promise<ConvergeResult> {
    let kernelMs = 0;
    if (resync || !this.trusted) {
      const t0 = performance.now();
      replaceDataplane(this.tables, await observe(this.runner, this.targets));
      kernelMs += performance.now() - t0;
      this.trusted = true;
    }
    const ops = planPending(this.tables);
    if (ops.length === 0) {
      this.refusing = false;
      return { operations: 0, failures: 0, byKind: countByKind([], []), unrouted: 0, kernelMs };
    }
    const t0 = performance.now();
    // Should execute() throw half-way, the next call reads the kernel instead of trusting us.
    this.trusted = false;
    const r = await execute(this.runner, ops);
    kernelMs += performance.now() - t0;
    applyResults(this.tables, ops, r.ok);
    this.trusted = r.failures === 0;
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
    return { operations: ops.length - r.failures, failures: r.failures, byKind: countByKind(ops, r.ok), unrouted, kernelMs };
  }
}

/** One backend's peers and kernel entries: desired per peer, against the kernel, in one set of tables. */
export class PeerSync {
  readonly desired: DesiredPeers;
  readonly converger: Converger;

  constructor(
    runner: IpRunner,
    targets: ObserveTargets,
    log: Logger,
    private readonly skips: SkipReporter,
  ) {
    const tables = kernelTables();
    this.desired = new DesiredPeers(tables);
    this.converger = new Converger(runner, targets, log, tables);
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

  /** Converges the kernel; `startedAt` is the backend call's performance.now(), so `ms` covers its setup too. */
  async converge(resync: boolean, startedAt: number): Promise<{ failures: number; report: ReconcileReport }> {
    const result = await this.converger.converge(resync);
    return {
      failures: result.failures,
      report: {
        operations: result.operations,
        failures: result.failures,
        byKind: result.byKind,
        skipped: this.skips.count,
        peersProgrammed: Math.max(0, this.desired.modelled - result.unrouted),
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
