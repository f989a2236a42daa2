// Waiting out an etcd outage, on the one retry policy (src/backoff.ts).
import { Backoff, RETRY } from '../backoff.js';

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
