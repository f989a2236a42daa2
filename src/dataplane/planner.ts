// From desired and kernel state (delta trackers) to an ordered list of operations. Pure.
//
// Order, chosen so that the kernel never routes to a peer it cannot encapsulate for, and so
// that the one refusal that aborts an `ip` batch (a neighbour change) can only cut short
// other neighbour deletions:
//   1. route deletes          ip
//   2. neighbour replaces     ip
//   3. FDB replaces           bridge
//   4. FDB deletes            bridge
//   5. route replaces         ip
//   6. neighbour deletes      ip
// So an added peer gets neighbour and FDB, then route; a removed one loses route and FDB,
// then neighbour. Consecutive operations on the same tool share one batch process: at most
// three process runs per plan (ip, bridge, ip), the first two run side by side (batch.ts).
import { DeltaTracker } from './delta-tracker.js';
import type { KernelSink } from './observe.js';
import {
  type ForeignRoute,
  fdbEqual,
  fdbKey,
  neighEqual,
  neighKey,
  routeEqual,
  routeKey,
  type FdbEntry,
  type KernelState,
  type NeighEntry,
  type RouteEntry,
} from './model.js';

export type Op =
  | { kind: 'route'; action: 'replace' | 'del'; key: string; entry: RouteEntry }
  | { kind: 'neigh'; action: 'replace' | 'del'; key: string; entry: NeighEntry }
  | { kind: 'fdb'; action: 'replace' | 'del'; key: string; entry: FdbEntry };

/** Desired against kernel state, one delta tracker per kind of entry. */
export interface KernelTables {
  routes: DeltaTracker<RouteEntry>;
  neighs: DeltaTracker<NeighEntry>;
  fdb: DeltaTracker<FdbEntry>;
  /** Routes in the main table weft did not create, by destination: never replaced or deleted. */
  foreign: Map<string, ForeignRoute>;
}

export function kernelTables(): KernelTables {
  return { routes: new DeltaTracker(routeEqual), neighs: new DeltaTracker(neighEqual), fdb: new DeltaTracker(fdbEqual), foreign: new Map() };
}

/** The kernel as dumped: the dataplane views of all three tables at once, and the foreign routes. */
export function replaceDataplane(t: KernelTables, dump: KernelState): void {
  t.routes.replaceDataplane(dump.routes);
  t.neighs.replaceDataplane(dump.neighs);
  t.fdb.replaceDataplane(dump.fdb);
  t.foreign = dump.foreign ?? new Map();
}

/**
 * A dump read into the tables in place (the periodic resync): the outcome of
 * replaceDataplane(t, dump) with the dump's entries keyed as putRoute and putFdb key them, but
 * without building the dump as a second state first (DeltaTracker.observe). Call end() when
 * the dump is complete; a dump that fails half-way leaves the views partly updated, so the
 * caller reads the kernel again before trusting them.
 */
export function tablesSink(t: KernelTables): KernelSink & { end(): void } {
  t.routes.beginObserve();
  t.neighs.beginObserve();
  t.fdb.beginObserve();
  const foreign = new Map<string, ForeignRoute>();
  return {
    route(r) {
      const key = routeKey(r.dst, r.metric);
      // A second route under one key gets a key no desired entry has, so the planner deletes it.
      for (let n = 1, k = key; !t.routes.observe(k, r); n++) k = `${key} dev ${r.dev} #${n}`;
    },
    neigh(n) {
      t.neighs.observe(neighKey(n.ip), n);
    },
    fdb(f) {
      if (!t.fdb.observe(fdbKey(f.mac), f)) t.fdb.observe(`${f.mac} ${f.dst.toString()}`, f);
    },
    foreign(f) {
      foreign.set(f.dst.toString(), f);
    },
    end() {
      t.routes.endObserve();
      t.neighs.endObserve();
      t.fdb.endObserve();
      t.foreign = foreign;
    },
  };
}

/**
 * The operations that take the kernel to the desired state: the tables' pending sets, in order.
 *
 * Only routes weft owns are replaced or deleted: a pending route update whose destination a
 * foreign route holds (t.foreign, from the last dump and the kernel's notifications) is left
 * out and stays pending, since a replace would take that route over and a later delete would
 * remove it for good. `held` collects them, with the route that holds each. The dataplane view holds weft's own routes
 * only, so a deletion never names a foreign route. `updatesOnly` leaves the deletions out (a
 * chunk of a bulk pass, whose deletions wait until every peer has been modelled).
 */
export function planPending(t: KernelTables, held?: RouteConflict[], opts: { updatesOnly?: boolean } = {}): Op[] {
  const foreign = t.foreign;
  const ops: Op[] = [];
  const deletes = !opts.updatesOnly;
  if (deletes) for (const [key, entry] of t.routes.pendingDeletions()) ops.push({ kind: 'route', action: 'del', key, entry });
  for (const [key, entry] of t.neighs.pendingUpdates()) ops.push({ kind: 'neigh', action: 'replace', key, entry });
  for (const [key, entry] of t.fdb.pendingUpdates()) ops.push({ kind: 'fdb', action: 'replace', key, entry });
  if (deletes) for (const [key, entry] of t.fdb.pendingDeletions()) ops.push({ kind: 'fdb', action: 'del', key, entry });
  for (const [key, entry] of t.routes.pendingUpdates()) {
    const by = foreign.size > 0 ? foreign.get(entry.dst.toString()) : undefined;
    if (by) {
      held?.push({ key, route: entry, by });
      continue;
    }
    ops.push({ kind: 'route', action: 'replace', key, entry });
  }
  if (deletes) for (const [key, entry] of t.neighs.pendingDeletions()) ops.push({ kind: 'neigh', action: 'del', key, entry });
  return ops;
}

/** Records the operations that succeeded in the tables' dataplane views (they leave the pending sets). */
export function applyResults(t: KernelTables, ops: readonly Op[], ok: readonly boolean[]): void {
  ops.forEach((op, i) => {
    if (!ok[i]) return;
    const table = (op.kind === 'route' ? t.routes : op.kind === 'neigh' ? t.neighs : t.fdb) as DeltaTracker<typeof op.entry>;
    if (op.action === 'del') table.deleteDataplane(op.key);
    else table.setDataplane(op.key, op.entry);
  });
}

/** The operations that take observed to desired, both whole states (the same rules as planPending). */
export function plan(desired: KernelState, observed: KernelState): Op[] {
  const t = kernelTables();
  for (const [k, v] of desired.routes) t.routes.setDesired(k, v);
  for (const [k, v] of desired.neighs) t.neighs.setDesired(k, v);
  for (const [k, v] of desired.fdb) t.fdb.setDesired(k, v);
  replaceDataplane(t, observed);
  return planPending(t);
}

/** Applies the operations that succeeded to a whole state (tests keep a model kernel this way). */
export function applyToState(state: KernelState, ops: Op[], ok: boolean[]): void {
  ops.forEach((op, i) => {
    if (!ok[i]) return;
    const map = (op.kind === 'route' ? state.routes : op.kind === 'neigh' ? state.neighs : state.fdb) as Map<string, typeof op.entry>;
    if (op.action === 'del') map.delete(op.key);
    else map.set(op.key, op.entry);
  });
}

/** A desired route left out because a route weft did not create holds its destination. */
export interface RouteConflict {
  /** The route's table key. */
  key: string;
  route: RouteEntry;
  by: ForeignRoute;
}
