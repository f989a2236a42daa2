// When and what to reconcile. Lease changes go to each address family's peer set; the loop
// then hands each backend the peer changes since its last pass (a delta, not the fleet) and
// logs and counts the outcome. Triggers coalesce: whatever arrives while a pass runs is folded
// into the next, so a burst of 1,000 events costs a handful of passes. A failed pass is
// retried with the agent's one backoff policy (RETRY.dataplane).
//
// One line per lease event: a pass that carries one peer's change logs that change with the
// pass's outcome ("peer added key=... operations=3 failures=0 ms=0.4"), not a peer line and
// then a "dataplane converged" line (each line costs the agent ~0.05 ms of CPU).
import type { IpNet } from '../alloc/cidr.js';
import type { LeaseKey } from '../api/lease.js';
import type { Backend, KernelOpCounts, Peer, PeerDelta, ReconcileReport } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { LeaseChange } from './lease-watch.js';
import type { AgentMetrics, ReconcileTrigger } from './metrics.js';
import { peerChangeLines, type LogLine, type PeerChanges, type PeerSet } from './peer-set.js';
import { Backoff, RETRY } from '../backoff.js';
import type { Timers } from './timers.js';

/**
 * One address family's share of the dataplane. A dual-stack network has two: the IPv4 one
 * (device flannel.<VNI>, the lease's IPv4 half, PublicIP, BackendData) and the IPv6 one
 * (flannel-v6.<VNI>, the IPv6 half, PublicIPv6, BackendV6Data), converged one after the other.
 */
export interface Stack {
  family: 4 | 6;
  backend: Backend;
  peers: PeerSet;
  /** Peers whose route a route weft did not create holds, at the last pass. */
  routeConflicts?: number;
}

export interface ReconcileLoopDeps {
  stacks: readonly Stack[];
  /** The subnets held now; no pass runs without them (or planned ones). */
  held: () => LeaseKey | undefined;
  /**
   * Before the lease is ours: the subnets its acquisition is writing. Passes then program the
   * peers around them (provisional passes: no device address, never "converged"), so that
   * the kernel's work at start begins while the transaction is in flight.
   */
  planned?: () => LeaseKey | undefined;
  log: Logger;
  peerLog: Logger;
  metrics: AgentMetrics;
  timers: Timers;
  /** The outcome of each pass that completed, and the error of each that threw. */
  onReport?: (report: CombinedReport) => void;
  onFailure?: (desired: number, message: string) => void;
  /** The first pass that converged every stack (the agent is ready). */
  onConverged?: (report: CombinedReport) => void;
  /** A backend reports a VTEP MAC other than the one published (its device was recreated). */
  onVtepMAC?: (family: 4 | 6, mac: string) => void;
}

/** A batch of lease changes this large waits for the next pass, which feeds it to the peer sets in chunks. */
const QUEUE_FROM = 1024;
/** Lease changes per chunk: about the peers per chunk of a backend's bulk pass (converger.ts). */
const QUEUE_CHUNK = 512;
/**
 * The first chunk is smaller, and each next one twice as large up to QUEUE_CHUNK: the kernel
 * starts sooner, and its first chunks (few routes in the kernel yet) are cheap for it anyway.
 */
const FIRST_CHUNK = 128;

export class ReconcileLoop {
  private pending = false;
  private resync = false;
  private retry = false;
  /** The kernel's notifications saw weft's entries or device changed by someone else. */
  private drifted: string | undefined;
  private running = false;
  private enabled = false;
  private stopped = false;
  private convergedOnce = false;
  private readonly backoff = new Backoff(RETRY.dataplane);
  /** Per stack: peer changes taken from its set but not yet handed over by a pass that completed. */
  private readonly carried = new Map<Stack, Map<string, Peer | undefined>>();

  constructor(private readonly d: ReconcileLoopDeps) {}

  get converged(): boolean {
    return this.convergedOnce;
  }

  /**
   * Lease changes from the watch: into every family's peer set, then a pass. Changes of our
   * own key alone need none: it is never a peer, nor does it take a peer's place (the peer
   * set leaves it out of its overlap index). They are its renewals, and the watch's replay of
   * the acquisition's own write when it starts after the first pass (agent.ts).
   */
  leasesChanged(changes: readonly LeaseChange[]): void {
    if (this.queued.length > 0 || changes.length >= QUEUE_FROM) {
      for (const c of changes) this.queued.push(c);
    } else {
      for (const s of this.d.stacks) s.peers.apply(changes);
      if (this.ownKey !== undefined && changes.every((c) => c.key === this.ownKey)) return;
    }
    this.schedule('event');
  }

  /**
   * Lease changes not yet in the peer sets: a large batch (the listing at start, 5,000 leases)
   * goes in a chunk at a time during the next pass, each chunk while the kernel works on the
   * one before (Backend.update's `more`), instead of all of them before the pass begins.
   */
  private queued: LeaseChange[] = [];

  /** Our own lease key (never a peer), after each acquisition. */
  setOwnKey(key: string): void {
    this.ownKey = key;
    for (const s of this.d.stacks) s.peers.setOwnKey(key);
  }
  private ownKey: string | undefined;

  /** Passes may run from now on (the lease and the watch are in place). */
  start(): void {
    this.enabled = true;
    if (this.pending) this.kick();
  }

  stop(): void {
    this.stopped = true;
    this.afterPass.length = 0;
  }

  /** Runs `fn` once, when the next pass with a lease held has ended (converged or not). */
  whenPassed(fn: () => void): void {
    this.afterPass.push(fn);
  }
  private readonly afterPass: (() => void)[] = [];

  /** The kernel changed behind our back (`what` says what, for the log): a repair pass. */
  drift(what: string): void {
    this.drifted = this.drifted ? `${this.drifted}, ${what}` : what;
    this.schedule('drift');
  }

  /**
   * A resync or a retry re-reads the kernel. A drift pass plans what the notifications showed;
   * it and the periodic resync count as drift repair.
   */
  schedule(trigger: ReconcileTrigger): void {
    this.pending = true;
    this.resync ||= trigger === 'resync';
    this.retry ||= trigger === 'retry';
    if (this.enabled) this.kick();
  }

  private kick(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        const held = this.d.held();
        const planned = held ? undefined : this.d.planned?.();
        if (!held && !planned) break;
        const trigger: ReconcileTrigger = this.resync ? 'resync' : this.retry ? 'retry' : this.drifted !== undefined ? 'drift' : 'event';
        const resync = this.resync || this.retry;
        const drifted = this.drifted;
        this.pending = false;
        this.resync = false;
        this.retry = false;
        this.drifted = undefined;
        await this.pass(held ?? planned!, trigger, resync, drifted, !held);
        // Not after a provisional pass: the lease's own pass follows, and is what they wait for.
        if (held) for (const fn of this.afterPass.splice(0)) fn();
      }
    } finally {
      this.running = false;
    }
  }

  private async pass(held: LeaseKey, trigger: ReconcileTrigger, resync: boolean, drifted: string | undefined, provisional: boolean): Promise<void> {
    const desired = this.d.stacks[0]?.peers.size ?? 0;
    const queued = this.queued;
    this.queued = [];
    // With queued changes, the first stack's peer changes are logged once, when all are in.
    const logged: PeerChanges | undefined = queued.length > 0 ? { added: [], removed: [], changed: [] } : undefined;
    const fed = new Map<Stack, number>();
    /** Otherwise the first stack's peer changes, logged with the pass's outcome (or before its failure). */
    const peerLines: LogLine[] = [];
    try {
      const started = performance.now();
      const passes: { stack: Stack; desired: number; report: ReconcileReport }[] = [];
      for (const [i, stack] of this.d.stacks.entries()) {
        const into = i === 0 ? logged : undefined;
        const delta = this.take(stack, i === 0 && !logged ? peerLines : undefined, into);
        const own: IpNet | undefined = stack.family === 4 ? held.ipv4 : held.ipv6;
        if (!own) continue; // a lease without this family's half: nothing to converge for it
        const more = queued.length > 0 ? this.chunks(stack, queued, fed, into) : undefined;
        const report = await stack.backend.update(own, delta, { resync, ...(more ? { more } : {}), ...(provisional ? { provisional } : {}) });
        this.carried.get(stack)?.clear();
        stack.routeConflicts = report.routeConflicts ?? 0;
        passes.push({ stack, desired: stack.peers.size, report });
      }
      this.feedRest(queued, fed, logged);
      const report = combineReports(passes);
      this.d.onReport?.(report);
      this.d.metrics.reconciled({
        trigger,
        peersDesired: report.desired,
        peersProgrammed: report.peersProgrammed,
        ops: report.byKind,
        seconds: (performance.now() - started) / 1000,
      });
      if (resync) this.d.log.debug('resync done', { peers: report.desired, operations: report.operations });
      // A pass that only failed again is a retry: its failure was logged with the first one.
      const told = report.operations > 0 || (report.failures > 0 && this.backoff.failures === 0);
      const timing = { ms: Math.round(report.ms * 10) / 10, kernelMs: Math.round(report.kernelMs * 10) / 10 };
      const fields = { peers: report.desired, operations: report.operations, failures: report.failures, trigger, ...timing, ...(provisional ? { beforeLease: true } : {}) };
      // The kernel was changed behind our back (seen by the periodic resync, or by the
      // kernel's notifications at once), and this pass put it right.
      const repaired = (trigger === 'resync' || trigger === 'drift') && report.operations > 0;
      const single = peerLines.length === 1 && peerLines[0]!.msg !== 'peers changed' ? peerLines[0]! : undefined;
      if (single && told && !repaired) {
        peerLines.length = 0; // logged here, never again by the catch below
        this.d.peerLog.info(single.msg, { ...single.fields, ...fields });
      } else {
        this.logPeers(peerLines);
        if (told && repaired) this.d.log.warn('drift repaired', { ...fields, ...(trigger === 'drift' && drifted ? { drifted } : {}) });
        else if (told) this.d.log.info('dataplane converged', fields);
      }
      if (report.failures > 0) {
        this.retryLater();
      } else {
        if (this.backoff.failures > 0) this.d.log.info('dataplane recovered', { attempts: this.backoff.failures + 1 });
        this.backoff.reset();
        if (!this.convergedOnce && !provisional) {
          this.convergedOnce = true;
          this.d.onConverged?.(report);
        }
      }
      for (const p of passes) {
        const mac = p.report.vtepMAC;
        if (mac) this.d.onVtepMAC?.(p.stack.family, mac);
      }
    } catch (err) {
      this.feedRest(queued, fed, logged);
      this.logPeers(peerLines);
      this.d.onFailure?.(desired, (err as Error).message);
      // Once per failure streak, not once per retry.
      if (this.backoff.failures === 0) this.d.log.error('dataplane reconcile failed; will retry', { err: (err as Error).message });
      else this.d.log.debug('dataplane reconcile failed again', { attempt: this.backoff.failures + 1, err: (err as Error).message });
      this.retryLater();
    }
  }

  private retryLater(): void {
    this.d.timers.after(this.backoff.next(), () => this.schedule('retry'));
  }

  /** Logs and empties `lines` (a line is logged once, whatever throws after it). */
  private logPeers(lines: LogLine[]): void {
    for (const line of lines.splice(0)) this.d.peerLog.info(line.msg, line.fields);
  }

  /**
   * The stack's peer changes since its last pass, as the lines that log them (peers added,
   * changed and removed) into `lines` when given, or collected `into` a log of the whole
   * pass. Changes a pass took but did not complete are carried into the next: handing a
   * backend the same change twice is harmless (an unchanged peer is skipped).
   */
  private take(stack: Stack, lines: LogLine[] | undefined, into?: PeerChanges): PeerDelta {
    return this.carry(stack, this.takeChanges(stack, lines, into));
  }

  private takeChanges(stack: Stack, lines: LogLine[] | undefined, into: PeerChanges | undefined): PeerDelta {
    const { delta, changes } = stack.peers.take();
    if (into) {
      into.added.push(...changes.added);
      into.removed.push(...changes.removed);
      into.changed.push(...changes.changed);
    }
    if (lines) lines.push(...peerChangeLines(changes));
    return delta;
  }

  /** Adds a delta to what the stack's backend has not yet completed; returns all of it. */
  private carry(stack: Stack, delta: PeerDelta): PeerDelta {
    let carried = this.carried.get(stack);
    if (!carried) this.carried.set(stack, (carried = new Map()));
    for (const [key, peer] of delta) carried.set(key, peer);
    return carried;
  }

  /** Queued lease changes into the stack's peer set, QUEUE_CHUNK at a time, each chunk's delta as it is taken. */
  private *chunks(stack: Stack, queued: readonly LeaseChange[], fed: Map<Stack, number>, into: PeerChanges | undefined): Generator<PeerDelta> {
    for (let from = fed.get(stack) ?? 0, size = FIRST_CHUNK; from < queued.length; from = fed.get(stack) ?? 0, size = Math.min(QUEUE_CHUNK, 2 * size)) {
      const to = Math.min(queued.length, from + size);
      stack.peers.apply(queued.slice(from, to));
      fed.set(stack, to);
      const delta = this.takeChanges(stack, undefined, into);
      this.carry(stack, delta);
      yield delta;
    }
  }

  /**
   * After a pass (completed or not): the queued changes a backend did not take go into every
   * peer set now, for the next pass to hand over; then the pass's peer changes are logged.
   */
  private feedRest(queued: readonly LeaseChange[], fed: Map<Stack, number>, logged: PeerChanges | undefined): void {
    if (queued.length === 0) return;
    for (const [i, stack] of this.d.stacks.entries()) {
      const from = fed.get(stack) ?? 0;
      if (from >= queued.length) continue;
      stack.peers.apply(from === 0 ? queued : queued.slice(from));
      fed.set(stack, queued.length);
      const delta = this.takeChanges(stack, undefined, i === 0 ? logged : undefined);
      if (delta.size > 0) {
        this.carry(stack, delta);
        this.pending = true;
      }
    }
    if (!logged) return;
    for (const line of peerChangeLines(logged)) this.d.peerLog.info(line.msg, line.fields);
    logged.added.length = logged.removed.length = logged.changed.length = 0; // logged once, if called again
  }
}

export interface CombinedReport {
  desired: number;
  peersProgrammed: number;
  skipped: number;
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  ms: number;
  kernelMs: number;
}

/**
 * One pass's outcome over all stacks, counted per host: a peer host is desired once (the
 * first stack's count; every family sees the same hosts) and programmed only as far as every
 * family has it (the smallest count, a lower bound). Operations, failures and timings add up.
 */
export function combineReports(passes: readonly { desired: number; report: ReconcileReport }[]): CombinedReport {
  const byKind: KernelOpCounts = { route: { ok: 0, failed: 0 }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
  const out = { desired: passes[0]?.desired ?? 0, peersProgrammed: Infinity, skipped: 0, operations: 0, failures: 0, byKind, ms: 0, kernelMs: 0 };
  for (const { desired, report } of passes) {
    out.peersProgrammed = Math.min(out.peersProgrammed, report.peersProgrammed ?? (report.failures === 0 ? desired : 0));
    out.skipped = Math.max(out.skipped, report.skipped ?? 0);
    out.operations += report.operations;
    out.failures += report.failures;
    out.ms += report.ms ?? 0;
    out.kernelMs += report.kernelMs ?? 0;
    const kinds = report.byKind ?? { route: { ok: report.operations, failed: report.failures }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
    for (const k of ['route', 'neigh', 'fdb'] as const) {
      byKind[k].ok += kinds[k].ok;
      byKind[k].failed += kinds[k].failed;
    }
  }
  if (out.peersProgrammed === Infinity) out.peersProgrammed = 0;
  return out;
}
