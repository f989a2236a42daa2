// weft's one retry policy: exponential backoff with jitter (cockatiel's, the library the
// etcd client already retries with), one named range per kind of work. Every call site that
// waits before trying again (the agent's, and the dataplane's drift-loop guard) takes its
// delays from a Backoff here, never from a formula of its own.
import { ExponentialBackoff, halfJitterGenerator, type IBackoff } from 'cockatiel';

export interface RetryRange {
  /** The delay after the first failure (before jitter). */
  firstMs: number;
  /** No delay grows past this. */
  maxMs: number;
}

export const RETRY = {
  /** etcd away (config read, lease, watch re-list, renewal): a returning etcd is noticed within ~3 s. */
  etcd: { firstMs: 250, maxMs: 3_000 },
  /** A reconcile the kernel refused or that threw: retried soon, then no more than twice a minute. */
  dataplane: { firstMs: 500, maxMs: 30_000 },
  /** A lost compare-and-swap race: short, so that concurrent joins spread out and still finish fast. */
  contention: { firstMs: 20, maxMs: 1_000 },
  /**
   * Our lease taken over under our node name (a cloned VM, or a forged key): re-checked after
   * a wait, so that a forged key is taken back and two clones trade one subnet ever more slowly.
   */
  takeover: { firstMs: 3_000, maxMs: 300_000 },
  /** The node status record: best effort, never urgent. */
  status: { firstMs: 1_000, maxMs: 30_000 },
  /**
   * A kernel entry something on the host keeps undoing: repaired less and less often (up to
   * once a minute) instead of fighting the other party in a loop.
   */
  driftLoop: { firstMs: 1_000, maxMs: 60_000 },
  /** The kernel watch's rtmon failed to start or exited: started again; the resync covers the gap. */
  kernelWatch: { firstMs: 1_000, maxMs: 30_000 },
} as const satisfies Record<string, RetryRange>;

/**
 * A streak of failures. `next()` counts one more failure and says how long to wait before the
 * next attempt: the range's first delay doubling up to its maximum, each drawn in
 * [delay/2, delay) so that agents that failed together do not retry together.
 * `reset()` ends the streak (after a success).
 */
export class Backoff {
  private step: IBackoff<unknown> | undefined;
  private readonly factory: ExponentialBackoff<unknown>;
  private count = 0;

  constructor(readonly range: RetryRange) {
    this.factory = new ExponentialBackoff({ initialDelay: range.firstMs, maxDelay: range.maxMs, generator: halfJitterGenerator });
  }

  /** Failures in the current streak. */
  get failures(): number {
    return this.count;
  }

  next(): number {
    this.step = this.step ? this.step.next(undefined) : this.factory.next();
    this.count++;
    return this.step.duration;
  }

  reset(): void {
    this.step = undefined;
    this.count = 0;
  }
}
