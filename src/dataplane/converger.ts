// The delta tracker: desired state (from the leases) against what we believe the kernel holds.
//
// The belief starts from a kernel dump and is then updated from each batch's per-line outcome,
// so a lease event costs a diff and a batch of exactly the changed entries, with no dump. The
// kernel is read again only on a resync, or after any refused or uncertain operation (the
// belief may then be wrong, e.g. an entry deleted by hand or a device that vanished).
import type { Logger } from '../log.js';
import { execute } from './batch.js';
import type { IpRunner } from './ipcmd.js';
import type { KernelState } from './model.js';
import { observe, type ObserveTargets } from './observe.js';
import { applyToState, plan } from './planner.js';

export interface ConvergeResult {
  operations: number;
  failures: number;
}

export class Converger {
  private believed: KernelState | undefined;

  constructor(
    private readonly runner: IpRunner,
    private readonly targets: ObserveTargets,
    private readonly log: Logger,
  ) {}

  /** Forget the belief: the next converge() reads the kernel first. */
  invalidate(): void {
    this.believed = undefined;
  }

  async converge(desired: KernelState, resync: boolean): Promise<ConvergeResult> {
    if (resync || !this.believed) this.believed = await observe(this.runner, this.targets);
    const believed = this.believed;
    const ops = plan(desired, believed);
    if (ops.length === 0) return { operations: 0, failures: 0 };
    const r = await execute(this.runner, ops);
    applyToState(believed, ops, r.ok);
    if (r.failures > 0) {
      this.believed = undefined;
      this.log.warn('kernel refused some dataplane operations; will re-read the kernel and retry', {
        failures: r.failures,
        operations: ops.length,
        errors: r.errors.join('; '),
      });
    }
    return { operations: ops.length - r.failures, failures: r.failures };
  }
}
