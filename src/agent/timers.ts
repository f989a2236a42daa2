// The agent's timers, kept in one set so that shutdown cancels every one of them at once.

export class Timers {
  private readonly live = new Set<NodeJS.Timeout>();
  private stopped = false;

  /** Runs fn after ms (never after stop()). */
  after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.live.delete(t);
      if (!this.stopped) fn();
    }, ms);
    this.live.add(t);
    return t;
  }

  /** Resolves after ms, or at once when stopped (whoever waits checks for shutdown next). */
  wait(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const t = this.after(ms, () => {
        this.waiters.delete(resolve);
        resolve();
      });
      this.waiters.set(resolve, t);
    });
  }
  private readonly waiters = new Map<() => void, NodeJS.Timeout>();

  /** Runs fn every ms, the first time after ms. */
  every(ms: number, fn: () => void): void {
    const tick = () => {
      fn();
      this.after(ms, tick);
    };
    this.after(ms, tick);
  }

  cancel(t: NodeJS.Timeout | undefined): void {
    if (!t) return;
    clearTimeout(t);
    this.live.delete(t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.live) clearTimeout(t);
    this.live.clear();
    for (const resolve of this.waiters.keys()) resolve();
    this.waiters.clear();
  }
}

/** Warnings said once per tag until the tag is forgotten (a condition that persists across retries). */
export class WarnOnce {
  private readonly said = new Set<string>();

  constructor(private readonly log: { warn(msg: string): void }) {}

  /** Always undefined, so that a reader can `return once(...)`. */
  warn(tag: string, message: string): undefined {
    if (!this.said.has(tag)) {
      this.said.add(tag);
      this.log.warn(message);
    }
    return undefined;
  }

  forget(tag: string): void {
    this.said.delete(tag);
  }
}
