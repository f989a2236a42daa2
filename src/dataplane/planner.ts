// From (desired, observed) kernel state to an ordered list of operations. Pure.
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
import {
  type ForeignRoute,
  IPV6_ROUTE_METRIC,
  routeKey,
  fdbEqual,
  neighEqual,
  routeEqual,
  type FdbEntry,
  type KernelState,
  type NeighEntry,
  type RouteEntry,
} from './model.js';

export type Op =
  | { kind: 'route'; action: 'replace' | 'del'; key: string; entry: RouteEntry }
  | { kind: 'neigh'; action: 'replace' | 'del'; key: string; entry: NeighEntry }
  | { kind: 'fdb'; action: 'replace' | 'del'; key: string; entry: FdbEntry };

/** Keys to compare, per kind; without it every key of both states is compared. */
export interface KeysToPlan {
  routes: Iterable<string>;
  neighs: Iterable<string>;
  fdb: Iterable<string>;
}

function diff<E>(
  desired: Map<string, E>,
  observed: Map<string, E>,
  equal: (a: E, b: E) => boolean,
  keys: Iterable<string> | undefined,
): { replace: [string, E][]; del: [string, E][] } {
  const replace: [string, E][] = [];
  const del: [string, E][] = [];
  if (keys) {
    for (const key of keys) {
      const want = desired.get(key);
      const have = observed.get(key);
      if (want !== undefined && (have === undefined || (have !== want && !equal(have, want)))) replace.push([key, want]);
      else if (want === undefined && have !== undefined) del.push([key, have]);
    }
    return { replace, del };
  }
  for (const [key, want] of desired) {
    const have = observed.get(key);
    if (have === undefined || (have !== want && !equal(have, want))) replace.push([key, want]);
  }
  for (const [key, have] of observed) if (!desired.has(key)) del.push([key, have]);
  return { replace, del };
}

/**
 * The operations that take observed to desired. With `keys`, only those keys are compared
 * (the caller knows nothing else changed since observed last matched desired): one lease
 * event then costs work proportional to its own entries.
 *
 * Only routes weft owns are replaced or deleted: a desired route whose destination an
 * observed foreign route holds (observed.foreign) is left out, since a replace would take
 * that route over and a later delete would remove it for good. routeConflicts() lists them.
 */
export function plan(desired: KernelState, observed: KernelState, keys?: KeysToPlan): Op[] {
  const routes = diff(desired.routes, observed.routes, routeEqual, keys?.routes);
  const foreign = observed.foreign;
  if (foreign && foreign.size > 0) routes.replace = routes.replace.filter(([, e]) => !foreign.has(e.dst.toString()));
  const neighs = diff(desired.neighs, observed.neighs, neighEqual, keys?.neighs);
  const fdb = diff(desired.fdb, observed.fdb, fdbEqual, keys?.fdb);
  const ops: Op[] = [];
  for (const [key, entry] of routes.del) ops.push({ kind: 'route', action: 'del', key, entry });
  for (const [key, entry] of neighs.replace) ops.push({ kind: 'neigh', action: 'replace', key, entry });
  for (const [key, entry] of fdb.replace) ops.push({ kind: 'fdb', action: 'replace', key, entry });
  for (const [key, entry] of fdb.del) ops.push({ kind: 'fdb', action: 'del', key, entry });
  for (const [key, entry] of routes.replace) ops.push({ kind: 'route', action: 'replace', key, entry });
  for (const [key, entry] of neighs.del) ops.push({ kind: 'neigh', action: 'del', key, entry });
  return ops;
}

/** Applies the operations that succeeded to a state (the backend's belief of the kernel). */
export function applyToState(state: KernelState, ops: Op[], ok: boolean[]): void {
  ops.forEach((op, i) => {
    if (!ok[i]) return;
    const map = (op.kind === 'route' ? state.routes : op.kind === 'neigh' ? state.neighs : state.fdb) as Map<string, typeof op.entry>;
    if (op.action === 'del') map.delete(op.key);
    else map.set(op.key, op.entry);
  });
}

/** The desired routes a foreign route holds the destination of (left out by plan()), with the holder. */
export function routeConflicts(desired: KernelState, observed: KernelState): { route: RouteEntry; by: ForeignRoute }[] {
  const out: { route: RouteEntry; by: ForeignRoute }[] = [];
  // O(foreign routes): the host's own few, looked up by the keys weft's routes would have.
  for (const by of observed.foreign?.values() ?? []) {
    for (const metric of [0, IPV6_ROUTE_METRIC]) {
      const route = desired.routes.get(routeKey(by.dst, metric));
      if (route) out.push({ route, by });
    }
  }
  return out;
}
