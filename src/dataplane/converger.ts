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
import type { ApplyResult, KernelChannel, KernelEvent } from './channel.js';
import { DesiredPeers } from './desired.js';
import { judgeKernelEvent, type DriftVerdict } from './drift.js';
import type { KernelState, ModelContext } from './model.js';
import type { ObserveTargets } from './observe.js';
import { applyResults, kernelTables, planPending, tablesSink, type KernelTables, type Op, type RouteConflict } from './planner.js';
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

/** Notifications kept while a dump is under way; more than this and the dump is made again. */
const MAX_DURING_READ = 100_000;

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

  /** Whether the channel works on a bulk chunk beside the caller (netlink's thread), in the order of the calls. */
  get overlaps(): boolean {
    return this.channel.prepareBulk !== undefined;
  }

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
    // While a dump is under way, its answer may predate the change: judged once it is in.
    if (this.during) {
      if (this.during.length < MAX_DURING_READ) this.during.push(e);
      else this.during.overflowed = true;
      return { kind: 'none' };
    }
    if (!this.trusted) return { kind: 'none' }; // the next converge reads the kernel anyway
    const t = this.tables;
    const believed: KernelState = { routes: t.routes.dataplaneView(), neighs: t.neighs.dataplaneView(), fdb: t.fdb.dataplaneView(), foreign: t.foreign };
    // Read only: judgeKernelEvent writes to `believed`, never to `desired`.
    const desired = { routes: t.routes.desiredView(), neighs: t.neighs.desiredView(), fdb: t.fdb.desiredView() } as KernelState;
    const v = judgeKernelEvent(believed, desired, this.targets, e);
    if (v.kind === 'reread') this.trusted = false;
    return v;
  }

  /**
   * A large pass (the first at start: thousands of new peers) in chunks: `chunks` model one
   * chunk of peers each; the chunk's new and changed entries go to the channel's bulk path
   * (another thread, for netlink) while the next chunk is modelled, so the kernel's work
   * overlaps the agent's. A sent entry leaves the pending sets at once (as if applied): the
   * next chunk's plan must not send it again; a refusal makes the views untrusted, and the
   * closing converge() reads the kernel again. Deletions wait for that closing pass, when
   * every peer is modelled: an entry the kernel holds may be wanted by a later chunk (a
   * restart adopts every entry as it is).
   */
  async convergeInChunks(resync: boolean, chunks: Iterable<() => void>): Promise<ConvergeResult> {
    let kernelMs = await this.readIfUntrusted(resync);
    this.channel.prepareBulk?.();
    const sent: Promise<{ ops: Op[]; r: ApplyResult | undefined }>[] = [];
    let t0: number | undefined;
    for (const model of chunks) {
      model();
      const ops = planPending(this.tables, undefined, { updatesOnly: true });
      if (ops.length === 0) continue;
      t0 ??= performance.now();
      // Sent first (the channel encodes and hands the batch to its thread within the call),
      // then written into the views while the kernel works on it.
      sent.push(this.channel.apply(ops, { bulk: true }).then((r) => ({ ops, r }), () => ({ ops, r: undefined })));
      applyResults(this.tables, ops, ops.map(() => true));
      // Let the thread's answers in (the second round of a chunk waits for its first).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const results = await Promise.all(sent);
    if (t0 !== undefined) kernelMs += performance.now() - t0;
    const chunked = { operations: 0, failures: 0, byKind: countByKind([], []), errors: [] as string[] };
    for (const { ops, r } of results) {
      const ok = r?.ok ?? ops.map(() => false);
      const failures = ok.filter((x) => !x).length;
      const counts = countByKind(ops, ok);
      for (const k of ['route', 'neigh', 'fdb'] as const) {
        chunked.byKind[k].ok += counts[k].ok;
        chunked.byKind[k].failed += counts[k].failed;
      }
      chunked.operations += ops.length - failures;
      chunked.failures += failures;
      if (r) chunked.errors.push(...r.errors);
      else chunked.errors.push('the kernel channel failed');
    }
    if (chunked.failures > 0) {
      // What the views say was applied is not: read the kernel before the closing pass, which
      // tries again (and warns about what the kernel still refuses).
      this.trusted = false;
      this.log.debug('kernel refused some operations of a bulk pass; re-reading the kernel', {
        failures: chunked.failures,
        operations: chunked.operations + chunked.failures,
        errors: chunked.errors.slice(0, 5).join('; '),
      });
    }
    this.log.debug('bulk pass', { chunks: sent.length, operations: chunked.operations, failures: chunked.failures, kernelMs: Math.round(kernelMs) });
    const rest = await this.converge(false);
    for (const k of ['route', 'neigh', 'fdb'] as const) {
      rest.byKind[k].ok += chunked.byKind[k].ok;
      rest.byKind[k].failed += chunked.byKind[k].failed;
    }
    return {
      ...rest,
      operations: rest.operations + chunked.operations,
      // The closing pass tried the refused ones again: what it could not apply is what failed.
      failures: rest.failures,
      kernelMs: rest.kernelMs + kernelMs,
    };
  }

  /** Reads the kernel into the views when asked to or when they cannot be trusted; the time it took. */
  private async readIfUntrusted(resync: boolean): Promise<number> {
    if (!resync && this.trusted) return 0;
    const t0 = performance.now();
    for (let attempt = 1; ; attempt++) {
      const during: KernelEvent[] & { overflowed?: boolean } = [];
      this.during = during;
      // Read in place, as the dumps arrive (tablesSink): a dump that fails half-way leaves the
      // views partly updated, so they are untrusted until one completes.
      this.trusted = false;
      const sink = tablesSink(this.tables);
      try {
        await this.channel.observeInto(this.targets, sink);
      } finally {
        this.during = undefined;
      }
      sink.end();
      this.trusted = true;
      // What the kernel said while the dump was made: applied to it now (a change the dump
      // already holds applies again harmlessly). One that loses the view means reading again.
      let lost = during.overflowed === true;
      for (const e of during) if (this.noteKernelEvent(e).kind === 'reread') lost = true;
      if (!lost || attempt === 3) break;
    }
    return performance.now() - t0;
  }

  /** Notifications received while a dump is under way (judged once it is in); undefined otherwise. */
  private during: (KernelEvent[] & { overflowed?: boolean }) | undefined;

  async converge(resync: boolean): Promise<ConvergeResult> {
    let kernelMs = await this.readIfUntrusted(resync);
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

/**
 * Peers per chunk of a bulk pass: 1,536 operations, six netlink datagrams. Small enough that
 * the kernel gets its first chunk soon and the thread seldom waits for the next; large enough
 * that the hand-overs between threads cost little.
 */
const BULK_CHUNK = 512;

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

  /** Whether a delta is large enough to go in chunks (the first pass at start, at scale). */
  static isBulk(delta: PeerDelta): boolean {
    return PeerSync.isBulkSize(delta.size);
  }

  static isBulkSize(peers: number): boolean {
    return peers >= 2 * BULK_CHUNK;
  }

  /**
   * Models a large delta chunk by chunk and converges, the kernel working on each chunk while
   * the next is modelled (Converger.convergeInChunks). The same outcome as model() then
   * converge(), in the same time as the longer of the two rather than their sum.
   */
  async convergeBulk(ctx: ModelContext, delta: PeerDelta, resync: boolean, startedAt: number, more: Iterable<PeerDelta> = []): Promise<{ failures: number; report: ReconcileReport }> {
    if (!this.converger.overlaps) {
      // iproute2: its processes would run the chunks side by side, in no set order.
      this.model(ctx, delta);
      for (const d of more) this.model(ctx, d);
      return this.converge(resync, startedAt);
    }
    // `more` is read as the chunks are: each of its deltas is made when the one before is sent.
    const deltas = function* (): Generator<PeerDelta> {
      yield delta;
      yield* more;
    };
    const chunks = function* (sync: PeerSync): Iterable<() => void> {
      for (const d of deltas()) {
        if (d.size <= BULK_CHUNK) {
          if (d.size > 0) yield () => sync.model(ctx, d);
          continue;
        }
        const changes = [...d];
        for (let i = 0; i < changes.length; i += BULK_CHUNK) yield () => sync.model(ctx, new Map(changes.slice(i, i + BULK_CHUNK)));
      }
    };
    return this.outcome(await this.converger.convergeInChunks(resync, chunks(this)), startedAt);
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
    return this.outcome(await this.converger.converge(resync), startedAt);
  }

  private outcome(result: ConvergeResult, startedAt: number): { failures: number; report: ReconcileReport } {
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
