// The desired kernel state, kept up to date per peer so that one lease event costs work
// proportional to that event, not to the fleet.
//
// The agent hands over the full peer list on every call (the Backend contract is
// level-triggered), but a peer whose lease did not change is the very same object as last
// time (the agent's PeerSelector caches them). So spotting what changed is a pass of pointer
// comparisons; only changed peers are evaluated, and only their keys are handed to the planner.
//
// Conflicts between peers (two leases with one VTEP MAC, say) are resolved in list order by
// the full computation; the incremental path only runs while no peer is left out for a
// conflict and the change creates none, and otherwise falls back to the full computation.
import {
  addEntries,
  conflictOf,
  emptyState,
  peerVerdict,
  type KernelState,
  type ModelContext,
  type PeerEntries,
} from './model.js';
import type { Peer } from './types.js';

/** Keys of the desired state that may differ from the last call's, per entry kind. */
export interface Touched {
  routes: Set<string>;
  neighs: Set<string>;
  fdb: Set<string>;
}

export interface DesiredUpdate {
  state: KernelState;
  /** Undefined after a full computation: the planner must compare everything. */
  touched: Touched | undefined;
  /** Full: every skipped peer. Incremental: changed peers only, reason undefined = no longer skipped. */
  skips: { key: string; reason: string | undefined }[];
  full: boolean;
}

interface Known {
  peer: Peer;
  gen: number;
  /** Entries this peer put in the state; undefined when it is skipped or not ours. */
  entries: PeerEntries | undefined;
}

export class DesiredTracker {
  private state: KernelState = emptyState();
  private known = new Map<string, Known>();
  private ctx: ModelContext | undefined;
  private gen = 0;
  /** Some peer is left out because another holds its subnet, MAC or gateway. */
  private conflicts = false;
  private withEntries = 0;

  /** Peers that have entries in the desired state (not left out). */
  get modelled(): number {
    return this.withEntries;
  }

  update(ctx: ModelContext, peers: readonly Peer[], forceFull: boolean): DesiredUpdate {
    if (forceFull || this.conflicts || !this.ctx || !sameContext(this.ctx, ctx)) return this.full(ctx, peers);
    const gen = ++this.gen;
    const changed: Peer[] = [];
    let unchanged = 0;
    for (const p of peers) {
      const k = this.known.get(p.key);
      if (k && k.peer === p) {
        if (k.gen === gen) return this.full(ctx, peers); // a key twice in the list
        k.gen = gen;
        unchanged++;
      } else {
        changed.push(p);
      }
    }
    if (changed.length === 0 && unchanged === this.known.size) return { state: this.state, touched: emptyTouched(), skips: [], full: false };

    const touched = emptyTouched();
    const skips: DesiredUpdate['skips'] = [];
    const drop = (key: string) => {
      const k = this.known.get(key);
      if (!k) return;
      this.known.delete(key);
      if (k.entries) {
        removeEntries(this.state, k.entries, touched);
        this.withEntries--;
      }
    };
    // Gone: known peers not seen in this pass (and not about to be replaced).
    const changedKnown = changed.reduce((n, p) => n + (this.known.has(p.key) ? 1 : 0), 0);
    if (unchanged + changedKnown < this.known.size) {
      const incoming = new Set(changed.map((p) => p.key));
      for (const [key, k] of this.known) {
        if (k.gen !== gen && !incoming.has(key)) {
          drop(key);
          skips.push({ key, reason: undefined });
        }
      }
    }
    for (const p of changed) drop(p.key);
    for (const p of changed) {
      const v = peerVerdict(ctx, p);
      if (v && 'skip' in v) {
        skips.push({ key: p.key, reason: v.skip });
        this.known.set(p.key, { peer: p, gen, entries: undefined });
        continue;
      }
      if (v && conflictOf(this.state, v, { mac: () => undefined })) return this.full(ctx, peers);
      if (v) {
        addEntries(this.state, v);
        touch(touched, v);
        this.withEntries++;
      }
      skips.push({ key: p.key, reason: undefined });
      this.known.set(p.key, { peer: p, gen, entries: v });
    }
    return { state: this.state, touched, skips, full: false };
  }

  /** Everything from scratch, in list order (the same rules as desiredState). */
  private full(ctx: ModelContext, peers: readonly Peer[]): DesiredUpdate {
    const gen = ++this.gen;
    const state = emptyState();
    const known = new Map<string, Known>();
    const skips: { key: string; reason: string }[] = [];
    const macOwner = new Map<string, string>();
    const owners = { mac: (mac: string) => macOwner.get(mac) };
    let conflicts = false;
    let withEntries = 0;
    for (const p of peers) {
      const v = peerVerdict(ctx, p);
      let entries: PeerEntries | undefined;
      if (v && 'skip' in v) {
        skips.push({ key: p.key, reason: v.skip });
      } else if (v) {
        const conflict = conflictOf(state, v, owners);
        if (conflict) {
          skips.push({ key: p.key, reason: conflict });
          conflicts = true;
        } else {
          addEntries(state, v);
          if (v.fdb) macOwner.set(v.fdb[0], p.key);
          entries = v;
          withEntries++;
        }
      }
      known.set(p.key, { peer: p, gen, entries });
    }
    this.state = state;
    this.known = known;
    this.ctx = ctx;
    this.conflicts = conflicts;
    this.withEntries = withEntries;
    return { state, touched: undefined, skips, full: true };
  }
}

function sameContext(a: ModelContext, b: ModelContext): boolean {
  return a.settings === b.settings && a.uplink === b.uplink && a.ownSubnet.equals(b.ownSubnet) && a.vxlanDev === b.vxlanDev && a.uplinkDev === b.uplinkDev;
}

function emptyTouched(): Touched {
  return { routes: new Set(), neighs: new Set(), fdb: new Set() };
}

function touch(t: Touched, e: PeerEntries): void {
  t.routes.add(e.route[0]);
  if (e.neigh) t.neighs.add(e.neigh[0]);
  if (e.fdb) t.fdb.add(e.fdb[0]);
}

function removeEntries(state: KernelState, e: PeerEntries, touched: Touched): void {
  state.routes.delete(e.route[0]);
  if (e.neigh) state.neighs.delete(e.neigh[0]);
  if (e.fdb) state.fdb.delete(e.fdb[0]);
  touch(touched, e);
}
