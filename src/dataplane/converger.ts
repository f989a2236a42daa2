// The delta tracker: desired state (from the leases) against what we believe the kernel holds.
//
// The belief starts from a kernel dump and is then updated from each batch's per-line outcome,
// so a lease event costs a diff and a batch of exactly the changed entries, with no dump. The
// kernel is read again only on a resync, or after any refused or uncertain operation (the
// belief may then be wrong, e.g. an entry deleted by hand or a device that vanished).
import type { Logger } from '../log.js';
import type { KernelChannel, KernelEvent } from './channel.js';
import { judgeKernelEvent, type DriftVerdict } from './drift.js';
import type { KernelState } from './model.js';
import type { ObserveTargets } from './observe.js';
import { applyToState, plan, type KeysToPlan, type Op } from './planner.js';
import type { KernelOpCounts } from './types.js';

export interface ConvergeResult {
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  /** Route adds or replaces not applied: peers not (or no longer correctly) routed. */
  unrouted: number;
  /** Time spent waiting for iproute2 (dumps and batches). */
  kernelMs: number;
}

export class Converger {
  private believed: KernelState | undefined;
  private refusing = false;
  /** The desired state of the last converge (the kernel's notifications are judged against it). */
  private desired: KernelState | undefined;
  /** Keys the kernel's notifications say drifted since the last converge; planned with the next. */
  private drifted: { routes: Set<string>; neighs: Set<string>; fdb: Set<string> } = { routes: new Set(), neighs: new Set(), fdb: new Set() };

  constructor(
    private readonly channel: KernelChannel,
    private readonly targets: ObserveTargets,
    private readonly log: Logger,
  ) {}

  /** Forget the belief: the next converge() reads the kernel first. */
  invalidate(): void {
    this.believed = undefined;
  }

  /**
   * A kernel notification: updates the belief and says whether the kernel drifted from the
   * desired state (weft's own changes never do). Drifted keys are planned at the next converge.
   */
  noteKernelEvent(e: KernelEvent): DriftVerdict {
    if (!this.believed || !this.desired) return { kind: 'none' }; // the next converge reads the kernel anyway
    const v = judgeKernelEvent(this.believed, this.desired, this.targets, e);
    if (v.kind === 'reread') this.believed = undefined;
    if (v.kind === 'entries') {
      for (const k of v.routes) this.drifted.routes.add(k);
      for (const k of v.neighs) this.drifted.neighs.add(k);
      for (const k of v.fdb) this.drifted.fdb.add(k);
    }
    return v;
  }

  /**
   * `keys`, when given, are the only keys whose desired entries may have changed since the
   * last call; they are ignored when the kernel has to be read (resync, lost belief).
   */
  async converge(desired: KernelState, resync: boolean, keys?: KeysToPlan): Promise<ConvergeResult> {
    let kernelMs = 0;
    this.desired = desired;
    const drifted = this.drifted;
    this.drifted = { routes: new Set(), neighs: new Set(), fdb: new Set() };
    if (resync || !this.believed) {
      const t0 = performance.now();
      this.believed = await this.channel.observe(this.targets);
      kernelMs += performance.now() - t0;
      keys = undefined;
    }
    const believed = this.believed;
    if (keys && drifted.routes.size + drifted.neighs.size + drifted.fdb.size > 0) {
      keys = { routes: union(keys.routes, drifted.routes), neighs: union(keys.neighs, drifted.neighs), fdb: union(keys.fdb, drifted.fdb) };
    }
    const ops = plan(desired, believed, keys);
    if (ops.length === 0) {
      this.refusing = false;
      return { operations: 0, failures: 0, byKind: countByKind([], []), unrouted: 0, kernelMs };
    }
    const t0 = performance.now();
    let r;
    try {
      r = await this.channel.apply(ops);
    } catch (err) {
      // Thrown half-way: the next call reads the kernel instead of trusting the belief.
      this.believed = undefined;
      throw err;
    }
    kernelMs += performance.now() - t0;
    // A notification may have dropped the belief meanwhile: then the next converge reads the kernel.
    if (this.believed === believed) applyToState(believed, ops, r.ok);
    if (r.failures > 0) {
      this.believed = undefined;
      // Warn once per streak of refusals; the retries that follow log at debug.
      const detail = { failures: r.failures, operations: ops.length, errors: r.errors.join('; ') };
      if (this.refusing) this.log.debug('kernel refused some dataplane operations again', detail);
      else this.log.warn('kernel refused some dataplane operations; will re-read the kernel and retry', detail);
      this.refusing = true;
    } else {
      this.refusing = false;
    }
    return this.outcome(ops, r.ok, r.failures, kernelMs);
  }

  private outcome(ops: Op[], ok: boolean[], failures: number, kernelMs: number): ConvergeResult {
    const unrouted = ops.reduce((n, op, i) => n + (op.kind === 'route' && op.action === 'replace' && !ok[i] ? 1 : 0), 0);
    return { operations: ops.length - failures, failures, byKind: countByKind(ops, ok), unrouted, kernelMs };
  }
}

function union(a: Iterable<string>, b: Set<string>): Set<string> {
  const out = new Set(a);
  for (const k of b) out.add(k);
  return out;
}

export function countByKind(ops: readonly Op[], ok: readonly boolean[]): KernelOpCounts {
  const c: KernelOpCounts = { route: { ok: 0, failed: 0 }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
  ops.forEach((op, i) => {
    if (ok[i]) c[op.kind].ok++;
    else c[op.kind].failed++;
  });
  return c;
}
