// Kernel drift, as notifications report it. Pure except for DriftGuard's clock.
//
// A notification updates the belief (what weft thinks the kernel holds) and is then judged
// against the desired state: an entry weft wants that is now missing or different, or an
// entry weft does not want that appeared on its device, has drifted. weft's own changes are
// never drift: each one makes the kernel match the desired state, so judging every
// notification the same way ignores them without having to recognise them.
import { Backoff, RETRY } from '../backoff.js';
import type { Logger } from '../log.js';
import type { KernelEvent } from './channel.js';
import { fdbEqual, fdbKey, neighEqual, neighKey, routeEqual, routeKey, type KernelState } from './model.js';
import { isOwnedRoute, type ObserveTargets } from './observe.js';
import { RT_TABLE_MAIN, RTN_UNICAST } from './rtnl.js';

/** What a notification means for one backend. */
export type DriftVerdict =
  | { kind: 'none' }
  /** Entries (by planner key) to plan again. */
  | { kind: 'entries'; routes: string[]; neighs: string[]; fdb: string[] }
  /** The belief is lost (a device went away or down, notifications were dropped): re-read the kernel. */
  | { kind: 'reread'; why: string };

const NONE: DriftVerdict = { kind: 'none' };

/**
 * Applies a notification to `believed` (in place) and says whether the kernel drifted from
 * `desired`. Events on devices other than the targets', or of another family, are ignored.
 */
export function judgeKernelEvent(believed: KernelState, desired: KernelState, targets: ObserveTargets, e: KernelEvent): DriftVerdict {
  const family = targets.family ?? 4;
  switch (e.kind) {
    case 'lost':
      return { kind: 'reread', why: 'kernel notifications were dropped' };
    case 'link':
      if (e.dev !== targets.vxlanDev && e.dev !== targets.uplinkDev) return NONE;
      // IPv4 routes go with a device that goes down, without a notification of their own.
      if (e.action === 'del') return { kind: 'reread', why: `device ${e.dev} was deleted` };
      if (!e.up) return { kind: 'reread', why: `device ${e.dev} is down` };
      return NONE;
    case 'addr':
      return NONE; // the backend owning the device judges its addresses
    case 'route': {
      const r = e.route;
      if (e.table !== RT_TABLE_MAIN || r.dst.family !== family) return NONE;
      const own = r.dev === targets.vxlanDev ? { onlyWeft: false } : r.dev === targets.uplinkDev ? { onlyWeft: true, scope: targets.uplinkScope } : undefined;
      const key = routeKey(r.dst, r.metric);
      if (e.type !== RTN_UNICAST || !own || !isOwnedRoute(r, own)) {
        // Someone else's route (the operator's `ip route replace`, say): never drift to repair.
        // It holds its destination from now on, so the planner leaves weft's route to it
        // alone; if it replaced weft's route under the same key, weft's is gone. A deletion
        // is left to the next dump (another foreign route may hold the same destination).
        if (e.action === 'new' && believed.foreign) {
          believed.foreign.set(r.dst.toString(), { dst: r.dst, dev: r.dev, proto: r.proto, type: e.type === RTN_UNICAST ? 'unicast' : `type ${e.type}` });
          believed.routes.delete(key);
        }
        return NONE;
      }
      const have = believed.routes.get(key);
      if (e.action === 'new') believed.routes.set(key, r);
      else if (have && routeEqual(have, r)) believed.routes.delete(key);
      else return NONE;
      const want = desired.routes.get(key);
      const now = believed.routes.get(key);
      const drifted = want ? !now || !routeEqual(now, want) : e.action === 'new';
      return drifted ? { kind: 'entries', routes: [key], neighs: [], fdb: [] } : NONE;
    }
    case 'neigh': {
      if (e.dev !== targets.vxlanDev || !e.ip || e.ip.family !== family) return NONE;
      const key = neighKey(e.ip);
      const want = desired.neighs.get(key);
      if (e.action === 'new' && e.neigh) believed.neighs.set(key, e.neigh);
      else if (believed.neighs.has(key)) believed.neighs.delete(key); // deleted, or no longer permanent
      else if (!want) return NONE;
      const now = believed.neighs.get(key);
      const drifted = want ? !now || !neighEqual(now, want) : e.action === 'new' && e.neigh !== undefined;
      return drifted ? { kind: 'entries', routes: [], neighs: [key], fdb: [] } : NONE;
    }
    case 'fdb': {
      const f = e.fdb;
      if (f.dev !== targets.vxlanDev || f.dst.family !== family) return NONE;
      const key = fdbKey(f.mac);
      const have = believed.fdb.get(key);
      if (e.action === 'new') believed.fdb.set(key, f);
      else if (have && have.dst.equals(f.dst)) believed.fdb.delete(key);
      else return NONE;
      const want = desired.fdb.get(key);
      const now = believed.fdb.get(key);
      const drifted = want ? !now || !fdbEqual(now, want) : e.action === 'new';
      return drifted ? { kind: 'entries', routes: [], neighs: [], fdb: [key] } : NONE;
    }
  }
}

/**
 * Never fight a loop: an entry (or device) repaired again and again, because something on the
 * host keeps removing it, is repaired with a growing delay (RETRY.driftLoop), and said once per
 * streak.
 */
export class DriftGuard {
  private readonly seen = new Map<string, { times: number[]; backoff: Backoff; warned: boolean }>();

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** Repairs of one thing within `windowMs` before backing off. */
    private readonly limit = 5,
    private readonly windowMs = 30_000,
  ) {}

  /** How long to wait before repairing `what` (0 = now). */
  delayFor(what: string): number {
    const t = this.now();
    let s = this.seen.get(what);
    if (!s) {
      if (this.seen.size >= 10_000) this.seen.clear(); // bounded: a flood of distinct keys is not a loop
      s = { times: [], backoff: new Backoff(RETRY.driftLoop), warned: false };
      this.seen.set(what, s);
    }
    s.times = s.times.filter((x) => t - x < this.windowMs);
    s.times.push(t);
    if (s.times.length <= this.limit) {
      if (s.backoff.failures > 0 && s.times.length === 1) {
        s.backoff.reset();
        s.warned = false;
      }
      return 0;
    }
    const delay = s.backoff.next();
    if (!s.warned) {
      s.warned = true;
      this.log.warn('something on this host keeps undoing a kernel entry weft owns; repairing it less often', {
        entry: what,
        repairs: s.times.length,
        withinSeconds: this.windowMs / 1000,
        nextRepairInMs: delay,
      });
    }
    return delay;
  }
}

/**
 * Tells a backend's subscribers (the agent) to run a repair pass, debounced: a burst of
 * notifications (a device deleted takes its routes, neighbours and FDB entries with it)
 * becomes one pass. The pass itself is an ordinary reconcile that plans the drifted keys.
 */
export class DriftSignal {
  private readonly listeners = new Set<(what: string) => void>();
  private timer: NodeJS.Timeout | undefined;
  private due = Infinity;
  private what: string[] = [];
  private readonly guard: DriftGuard;

  constructor(
    log: Logger,
    private readonly debounceMs = 10,
  ) {
    this.guard = new DriftGuard(log);
  }

  subscribe(listener: (what: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Something drifted (`what` names it for logs and for loop detection). */
  raise(what: string): void {
    if (this.listeners.size === 0) return;
    const delay = Math.max(this.debounceMs, this.guard.delayFor(what));
    if (this.what.length < 20) this.what.push(what);
    const due = Date.now() + delay;
    if (this.timer && due >= this.due) return;
    if (this.timer) clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.due = Infinity;
      const what = this.what.join(', ');
      this.what = [];
      for (const l of this.listeners) l(what);
    }, delay);
    this.timer.unref();
  }
}

/** A short name for a verdict's subject (loop detection key and log text). */
export function describeDrift(v: DriftVerdict): string | undefined {
  if (v.kind === 'none') return undefined;
  if (v.kind === 'reread') return v.why;
  return [...v.routes.map((k) => `route ${k}`), ...v.neighs.map((k) => `neighbour ${k}`), ...v.fdb.map((k) => `fdb ${k}`)].join(', ');
}
