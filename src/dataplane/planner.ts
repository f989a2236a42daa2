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
// So an added peer gets neighbour, then FDB, then route; a removed one loses route, then FDB,
// then neighbour. Consecutive operations on the same tool share one batch process: at most
// three process runs per plan (ip, bridge, ip).
import {
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

function diff<E>(
  desired: Map<string, E>,
  observed: Map<string, E>,
  equal: (a: E, b: E) => boolean,
): { replace: [string, E][]; del: [string, E][] } {
  const replace: [string, E][] = [];
  const del: [string, E][] = [];
  for (const [key, want] of desired) {
    const have = observed.get(key);
    if (!have || !equal(have, want)) replace.push([key, want]);
  }
  for (const [key, have] of observed) if (!desired.has(key)) del.push([key, have]);
  return { replace, del };
}

export function plan(desired: KernelState, observed: KernelState): Op[] {
  const routes = diff(desired.routes, observed.routes, routeEqual);
  const neighs = diff(desired.neighs, observed.neighs, neighEqual);
  const fdb = diff(desired.fdb, observed.fdb, fdbEqual);
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
