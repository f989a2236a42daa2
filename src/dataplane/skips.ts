// Logging peers the model leaves out, once per (lease key, reason): reconciles run on every
// lease event, and a bad lease must not flood the log.
import type { Logger } from '../log.js';

export class SkipReporter {
  private readonly reported = new Map<string, string>();

  constructor(private readonly log: Logger) {}

  /** Peers whose route is left out because a route weft does not own holds its destination. */
  private readonly held = new Map<string, string>();

  /** Peers left out right now. */
  get count(): number {
    return this.reported.size + this.held.size;
  }

  /** Of those, the ones left out for a route weft does not own. */
  get routeConflicts(): number {
    return this.held.size;
  }

  /** The full current list of route conflicts (from the converger, on every pass). */
  reportRouteConflicts(conflicts: readonly { key: string; reason: string }[]): void {
    const now = new Set<string>();
    for (const c of conflicts) {
      now.add(c.key);
      if (this.held.get(c.key) === c.reason) continue;
      this.held.set(c.key, c.reason);
      this.log.warn('not routing to peer', { key: c.key, reason: c.reason });
    }
    for (const key of this.held.keys()) if (!now.has(key)) this.held.delete(key);
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
