// Logging peers the model leaves out, once per (lease key, reason): reconciles run on every
// lease event, and a bad lease must not flood the log.
import type { Logger } from '../log.js';
import type { Skipped } from './model.js';

export class SkipReporter {
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  report(skipped: Skipped[]): void {
    const now = new Set<string>();
    for (const s of skipped) {
      now.add(s.key);
      if (this.reported.get(s.key) === s.reason) continue;
      this.reported.set(s.key, s.reason);
      this.log.warn('not routing to peer', { key: s.key, reason: s.reason });
    }
    for (const key of this.reported.keys()) if (!now.has(key)) this.reported.delete(key);
  }
}
