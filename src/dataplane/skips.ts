// Logging peers the model leaves out, once per (lease key, reason): reconciles run on every
// lease event, and a bad lease must not flood the log.
import type { Logger } from '../log.js';

export class SkipReporter {
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  /** Peers left out right now. */
  get count(): number {
    return this.reported.size;
  }

  /** Changes only: a reason for a peer now left out, undefined for one no longer left out. */
  update(changes: { key: string; reason: string | undefined }[]): void {
    for (const { key, reason } of changes) {
      if (reason === undefined) {
        this.reported.delete(key);
      } else if (this.reported.get(key) !== reason) {
        this.reported.set(key, reason);
        this.log.warn('not routing to peer', { key, reason });
      }
    }
  }
}
