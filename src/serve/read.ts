// get and list: one snapshot of the store (one etcd range at one revision), the same views as
// `weft get`, as JSON objects or as a Table.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Printable } from '../api/types.js';
import type { Snapshot } from '../control/snapshot.js';
import { GROUP_VERSION } from './discovery.js';
import type { ServeContext } from './context.js';
import { identity, listKind, type KindList, type ServedResource } from './kinds.js';
import { parseManagedRecord } from './managed-fields.js';
import { fieldFilter, labelFilter, type Filter } from './selectors.js';
import { ApiError, notFound } from './status.js';
import { includeObjectOf, tableOf, wantsTable } from './tables.js';
import { sendJson } from './respond.js';

export interface State {
  snap: Snapshot;
  list: KindList;
}

/** The etcd key of an object's managedFields record. */
export function managedKey(ctx: ServeContext, r: ServedResource, name: string): string {
  return `${ctx.rs.layout.metaRoot}managed/${r.plural}/${name}`;
}

/** Objects as the API shows them: with their managedFields, when weft serve recorded any. */
function withManagedFields(ctx: ServeContext, r: ServedResource, snap: Snapshot, items: Printable[]): Printable[] {
  if (r.kind !== 'Network' && r.kind !== 'Subnet') return items;
  return items.map((o) => {
    const entries = parseManagedRecord(snap.kvs.get(managedKey(ctx, r, o.metadata.name))?.value, o.metadata.uid);
    return entries.length ? ({ ...o, metadata: { ...o.metadata, managedFields: entries } } as unknown as Printable) : o;
  });
}

export async function readState(ctx: ServeContext, r: ServedResource, revision?: number): Promise<State> {
  const snap = await ctx.rs.snapshot(revision);
  const list = await listKind(ctx.rs, snap, r.kind, ctx.now().getTime());
  return { snap, list: { ...list, items: withManagedFields(ctx, r, snap, list.items) } };
}

/** The index of the named object; a lease or node name held in two networks is ambiguous. */
export function findIndex(list: KindList, r: ServedResource, name: string): number | undefined {
  const found = list.items.flatMap((o, i) => (o.metadata.name === name ? [i] : []));
  if (found.length > 1) {
    const networks = found.map((i) => identity(list.items[i]!).split('/')[0]).join(', ');
    throw new ApiError(409, 'Conflict', `${r.singular} "${name}" exists in networks ${networks}; select one with fieldSelector=metadata.name=${name},${r.kind === 'Node' ? 'status' : 'spec'}.network=NETWORK on a list`);
  }
  return found[0];
}

export async function handleGet(ctx: ServeContext, r: ServedResource, name: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const { list } = await readState(ctx, r);
  const i = findIndex(list, r, name);
  if (i === undefined) throw notFound({ plural: r.plural, kind: r.kind, name });
  const obj = list.items[i]!;
  if (wantsTable(req.headers.accept)) {
    sendJson(res, 200, tableOf(list, [i], obj.metadata.resourceVersion ?? '', includeObjectOf(url.searchParams.get('includeObject'))));
  } else {
    sendJson(res, 200, obj);
  }
}

export function selectorsOf(url: URL, r: ServedResource): Filter {
  const labels = labelFilter(url.searchParams.get('labelSelector'));
  const fields = fieldFilter(url.searchParams.get('fieldSelector'), r);
  return (o) => labels(o) && fields(o);
}

export async function handleList(ctx: ServeContext, r: ServedResource, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const filter = selectorsOf(url, r);
  const { snap, list } = await readState(ctx, r);
  const rows = list.items.flatMap((o, i) => (filter(o) ? [i] : []));
  const rv = String(snap.revision);
  if (wantsTable(req.headers.accept)) {
    sendJson(res, 200, tableOf(list, rows, rv, includeObjectOf(url.searchParams.get('includeObject'))));
    return;
  }
  sendJson(res, 200, { apiVersion: GROUP_VERSION, kind: `${r.kind}List`, metadata: { resourceVersion: rv }, items: rows.map((i) => list.items[i]) });
}
