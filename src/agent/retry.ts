// The agent's one retry policy: exponential backoff with jitter (cockatiel's, the library the
// etcd client already retries with), one named range per kind of work. Every call site that
// waits before trying again takes its delays from a Backoff here, never from a formula of its own.
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

/** How untilDone treats an error: retry it (an etcd outage, a lost race), or give up with it. */
export type ErrorVerdict = { retry: true; transient: boolean } | { retry: false; error: Error };

export interface UntilDoneOptions {
  /** What is being done, for the outage lines ("lease", "network config"). */
  what: string;
  log: { warn(msg: string, fields?: Record<string, unknown>): void; info(msg: string, fields?: Record<string, unknown>): void };
  classify: (err: unknown) => ErrorVerdict;
  /** Told of each transient failure (metrics). */
  onTransient?: (err: unknown) => void;
  /** Checked before each attempt: once true, untilDone gives up and resolves undefined. */
  stopped: () => boolean;
  /** Waits (a timer the owner can cancel at shutdown). */
  wait: (ms: number) => Promise<void>;
  backoff?: Backoff;
}

/**
 * Runs op until it returns a value, waiting RETRY.etcd between attempts while it throws a
 * retryable error or returns undefined. An outage is logged once when it begins and once when
 * it ends. Resolves undefined only when stopped.
 */
export async function untilDone<T>(op: () => Promise<T | undefined>, o: UntilDoneOptions): Promise<T | undefined> {
  const backoff = o.backoff ?? new Backoff(RETRY.etcd);
  let outage = false;
  for (;;) {
    if (o.stopped()) return undefined;
    try {
      const v = await op();
      if (outage) o.log.info(`etcd reachable again (${o.what})`, { attempts: backoff.failures });
      outage = false;
      if (v !== undefined) return v;
    } catch (err) {
      const verdict = o.classify(err);
      if (!verdict.retry) throw verdict.error;
      if (verdict.transient) {
        o.onTransient?.(err);
        if (!outage) o.log.warn(`etcd unavailable (${o.what}); retrying with backoff`, { err: (err as Error).message });
        outage = true;
      }
    }
    await o.wait(backoff.next());
  }
}
