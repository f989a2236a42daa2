// The desired kernel state, kept per peer and changed per peer: a change of one peer costs work
// proportional to that peer (and to the few peers it conflicts with), never to the fleet.
//
// Each peer's verdict (model.ts: its entries, or why it is left out) depends on the peer and
// the host alone. Conflicts between peers (two leases claiming one route, neighbour or VTEP
// MAC) are resolved per group of peers that share a claimed key: the peer with the lower order
// (its lease's create revision, else the order it first arrived in) keeps its entries, as
// desiredState does over a whole list. The chosen entries go into the desired views of the
// kernel tables (delta trackers); the tables then know what the kernel lacks.
import {
  addEntries,
  conflictOf,
  emptyState,
  peerVerdict,
  type ModelContext,
  type PeerEntries,
  type Verdict,
} from './model.js';
import type { KernelTables } from './planner.js';
import type { Peer, PeerDelta } from './types.js';

/** A peer newly left out (reason), or no longer left out (undefined). */
export interface SkipChange {
  key: string;
  reason: string | undefined;
}

interface Known {
  peer: Peer;
  order: number;
  verdict: Verdict;
  /** True when the peer's entries are in the desired state (it won every conflict). */
  included: boolean;
  /** Why it is left out, for the log; undefined when included or not ours to route. */
  skip: string | undefined;
}

type Kind = 'routes' | 'neighs' | 'fdb';

export class DesiredPeers {
  private readonly known = new Map<string, Known>();
  /**
   * Per kind, entry key -> the peers whose verdict claims it (included or not): the one name,
   * or a Set of several (a conflict, rare). A Set per entry would cost 15,000 Sets at 5,000
   * peers for nothing.
   */
  private readonly claims: Record<Kind, Map<string, Claimants>> = { routes: new Map(), neighs: new Map(), fdb: new Map() };
  private ctx: ModelContext | undefined;
  private arrivals = 0;
  private includedCount = 0;

  constructor(private readonly tables: KernelTables) {}

  /** Peers whose entries are in the desired state. */
  get modelled(): number {
    return this.includedCount;
  }

  /** The peers as last given (for a level-triggered caller to diff its list against). */
  peer(key: string): Peer | undefined {
    return this.known.get(key)?.peer;
  }

  keys(): IterableIterator<string> {
    return this.known.keys();
  }

  /** The peers (by lease name) whose entries include the route under `key`. */
  routeClaimants(key: string): Iterable<string> {
    return names(this.claims.routes.get(key));
  }

  /**
   * Applies peer changes (key -> new peer, or undefined when gone). A new context (another own
   * subnet, say) re-evaluates every peer: the only O(N) step, and a rare one.
   */
  update(ctx: ModelContext, delta: PeerDelta): SkipChange[] {
    if (this.ctx && !sameContext(this.ctx, ctx)) {
      const all = new Map<string, Peer | undefined>();
      for (const [key, k] of this.known) all.set(key, k.peer);
      for (const [key, p] of delta) all.set(key, p);
      this.ctx = ctx;
      for (const [key, k] of this.known) this.forget(key, k);
      this.known.clear();
      return this.apply(ctx, all);
    }
    this.ctx = ctx;
    return this.apply(ctx, delta);
  }

  private apply(ctx: ModelContext, delta: PeerDelta): SkipChange[] {
    const seeds = new Set<string>();
    const out = new Map<string, string | undefined>();
    for (const [key, peer] of delta) {
      const old = this.known.get(key);
      if (old) {
        if (old.peer === peer) continue;
        for (const partner of this.partners(key, old.verdict)) seeds.add(partner);
        this.forget(key, old);
        this.known.delete(key);
      }
      if (!peer) {
        out.set(key, undefined);
        continue;
      }
      const verdict = peerVerdict(ctx, peer);
      const k: Known = { peer, order: peer.since ?? old?.order ?? ++this.arrivals, verdict, included: false, skip: undefined };
      this.known.set(key, k);
      if (verdict && 'skip' in verdict) k.skip = verdict.skip;
      else if (verdict) {
        this.claim(key, verdict);
        seeds.add(key);
      }
      out.set(key, k.skip);
    }
    for (const changed of this.resolve(seeds)) out.set(changed, this.known.get(changed)?.skip);
    return [...out].map(([key, reason]) => ({ key, reason }));
  }

  /**
   * Re-decides, for each group of peers connected through shared claims that contains a seed,
   * which of them keep their entries. Returns the names whose outcome changed.
   */
  private resolve(seeds: Set<string>): string[] {
    const changed: string[] = [];
    const done = new Set<string>();
    for (const seed of seeds) {
      const k = this.known.get(seed);
      const verdict = k?.verdict;
      if (done.has(seed) || !k || !verdict || 'skip' in verdict) continue;
      if (this.alone(seed, verdict)) {
        // A group of one (nearly every peer): it keeps its entries. The same outcome as below,
        // without building a group (thousands of them in the first pass at start).
        if (!k.included) {
          this.addEntries(verdict);
          k.included = true;
          this.includedCount++;
        }
        if (k.skip !== undefined) {
          k.skip = undefined;
          changed.push(seed);
        }
        continue;
      }
      const group = this.group(seed);
      for (const name of group) done.add(name);
      const members = group.map((name) => ({ name, k: this.known.get(name)! }));
      members.sort((a, b) => a.k.order - b.k.order || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      // Greedy in order over the group alone: conflicts never reach outside it.
      const taken = emptyState();
      const macOwner = new Map<string, string>();
      const decisions = members.map(({ name, k }) => {
        const e = k.verdict as PeerEntries;
        const conflict = conflictOf(taken, e, { mac: (mac) => macOwner.get(mac) });
        if (!conflict) {
          addEntries(taken, e);
          if (e.fdbKey !== undefined) macOwner.set(e.fdbKey, name);
        }
        return { name, k, e, conflict };
      });
      // Take out the entries of those that lose theirs before putting in the winners'.
      for (const d of decisions) {
        if (d.k.included && d.conflict) {
          this.removeEntries(d.e);
          d.k.included = false;
          this.includedCount--;
        }
      }
      for (const d of decisions) {
        if (!d.k.included && !d.conflict) {
          this.addEntries(d.e);
          d.k.included = true;
          this.includedCount++;
        }
        if (d.k.skip !== d.conflict) {
          d.k.skip = d.conflict;
          changed.push(d.name);
        }
      }
    }
    return changed;
  }

  /** Names of the peers connected to `start` through claimed keys (start included). */
  private group(start: string): string[] {
    const seen = new Set<string>([start]);
    const queue = [start];
    while (queue.length > 0) {
      const name = queue.pop()!;
      for (const partner of this.partners(name, this.known.get(name)!.verdict)) {
        if (!seen.has(partner)) {
          seen.add(partner);
          queue.push(partner);
        }
      }
    }
    return [...seen];
  }

  /** Whether no other peer claims any of the keys this verdict claims. */
  private alone(name: string, e: PeerEntries): boolean {
    return (
      this.claims.routes.get(e.routeKey) === name &&
      (e.neighKey === undefined || this.claims.neighs.get(e.neighKey) === name) &&
      (e.fdbKey === undefined || this.claims.fdb.get(e.fdbKey) === name)
    );
  }

  /** Other peers claiming one of the keys this verdict claims. */
  private *partners(name: string, verdict: Verdict): Iterable<string> {
    if (!verdict || 'skip' in verdict) return;
    for (const [kind, key] of claimedKeys(verdict)) {
      for (const other of names(this.claims[kind].get(key))) if (other !== name) yield other;
    }
  }

  private claim(name: string, e: PeerEntries): void {
    for (const [kind, key] of claimedKeys(e)) {
      const map = this.claims[kind];
      const c = map.get(key);
      if (c === undefined || c === name) map.set(key, name);
      else if (typeof c === 'string') map.set(key, new Set([c, name]));
      else c.add(name);
    }
  }

  /** Drops a peer's claims, and its entries if it had them in the desired state. */
  private forget(name: string, k: Known): void {
    if (!k.verdict || 'skip' in k.verdict) return;
    for (const [kind, key] of claimedKeys(k.verdict)) {
      const map = this.claims[kind];
      const c = map.get(key);
      if (c === name) map.delete(key);
      else if (c !== undefined && typeof c !== 'string') {
        c.delete(name);
        if (c.size === 1) map.set(key, c.values().next().value!);
      }
    }
    if (k.included) {
      this.removeEntries(k.verdict);
      k.included = false;
      this.includedCount--;
    }
  }

  private addEntries(e: PeerEntries): void {
    this.tables.routes.setDesired(e.routeKey, e.route);
    if (e.neighKey !== undefined) this.tables.neighs.setDesired(e.neighKey, e.neigh!);
    if (e.fdbKey !== undefined) this.tables.fdb.setDesired(e.fdbKey, e.fdb!);
  }

  private removeEntries(e: PeerEntries): void {
    this.tables.routes.deleteDesired(e.routeKey);
    if (e.neighKey !== undefined) this.tables.neighs.deleteDesired(e.neighKey);
    if (e.fdbKey !== undefined) this.tables.fdb.deleteDesired(e.fdbKey);
  }
}

type Claimants = string | Set<string>;

function names(c: Claimants | undefined): Iterable<string> {
  return c === undefined ? [] : typeof c === 'string' ? [c] : c;
}

function claimedKeys(e: PeerEntries): [Kind, string][] {
  const out: [Kind, string][] = [['routes', e.routeKey]];
  if (e.neighKey !== undefined) out.push(['neighs', e.neighKey]);
  if (e.fdbKey !== undefined) out.push(['fdb', e.fdbKey]);
  return out;
}

function sameContext(a: ModelContext, b: ModelContext): boolean {
  return a.settings === b.settings && a.uplink === b.uplink && a.ownSubnet.equals(b.ownSubnet) && a.vxlanDev === b.vxlanDev && a.uplinkDev === b.uplinkDev;
}
