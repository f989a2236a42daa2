// Polling with a deadline, with a hook to fail fast. Tests use it too (test/helpers/wait.ts).

export interface PollOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Describes the condition, for the timeout message. */
  what?: string;
}

/** Calls check until it returns a truthy value (returned) or the deadline passes (throws). */
export async function poll<T>(check: () => T | Promise<T>, opts: PollOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      lastError = undefined;
    } catch (err) {
      if (err instanceof PollAbort) throw err.cause;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}${why}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** Thrown from a check to stop polling at once (e.g. the process being waited on has died). */
export class PollAbort extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}
