// The delta tracker: desired state (from the leases) against what we believe the kernel holds.
//
// The belief starts from a kernel dump and is then updated from each batch's per-line outcome,
// so a lease event costs a diff and a batch of exactly the changed entries, with no dump. The
// kernel is read again only on a resync, or after any refused or uncertain operation (the
// belief may then be wrong, e.g. an entry deleted by hand or a device that vanished).
import type { Logger } from '../log.js';
import { execute } from './batch.js';
import type { IpRunner } from './ipcmd.js';
import type { ForeignRoute, KernelState, RouteEntry } from './model.js';
import { observe, type ObserveTargets } from './observe.js';
import { applyToState, plan, routeConflicts, type KeysToPlan, type Op } from './planner.js';
import type { KernelOpCounts } from './types.js';

export interface ConvergeResult {
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  /** Route adds or replaces not applied: peers not (or no longer correctly) routed. */
  unrouted: number;
  /** Time spent waiting for iproute2 (dumps and batches). */
  kernelMs: number;
  /** Desired routes left out because a route weft does not own holds their destination. */
  conflicts: { route: RouteEntry; by: ForeignRoute }[];
}

export class Converger {
  private believed: KernelState | undefined;
  private refusing = false;

  constructor(
    private readonly runner: IpRunner,
    private readonly targets: ObserveTargets,
    private readonly log: Logger,
  ) {}

  /** Forget the belief: the next converge() reads the kernel first. */
  invalidate(): void {
    this.believed = undefined;
  }

  /**
   * `keys`, when given, are the only keys whose desired entries may have changed since the
   * last call; they are ignored when the kernel has to be read (resync, lost belief).
   */
  async converge(desired: KernelState, resync: boolean, keys?: KeysToPlan): Promise<ConvergeResult> {
    let kernelMs = 0;
    if (resync || !this.believed) {
      const t0 = performance.now();
      this.believed = await observe(this.runner, this.targets);
      kernelMs += performance.now() - t0;
      keys = undefined;
    }
    const believed = this.believed;
    const ops = plan(desired, believed, keys);
    const conflicts = routeConflicts(desired, believed);
    if (ops.length === 0) {
      this.refusing = false;
      return { operations: 0, failures: 0, byKind: countByKind([], []), unrouted: 0, kernelMs, conflicts };
    }
    const t0 = performance.now();
    // Should execute() throw half-way, the next call reads the kernel instead of trusting us.
    this.believed = undefined;
    const r = await execute(this.runner, ops);
    this.believed = believed;
    kernelMs += performance.now() - t0;
    applyToState(believed, ops, r.ok);
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
    const unrouted = ops.reduce((n, op, i) => n + (op.kind === 'route' && op.action === 'replace' && !r.ok[i] ? 1 : 0), 0);
    return { operations: ops.length - r.failures, failures: r.failures, byKind: countByKind(ops, r.ok), unrouted, kernelMs, conflicts };
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
