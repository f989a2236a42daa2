// The four resources weft serves and how each is read from one snapshot of the store: the
// same views `weft get` prints (src/control) and the same
// table cells (control/columns.ts).
import type { Printable } from '../api/types.js';
import { leaseCells, networkCells, nodeCells, subnetCells, type Cells } from '../control/columns.js';
import type { Snapshot } from '../control/snapshot.js';
import { networkViews, nodeViews, subnetViews } from '../control/views.js';
import type { ResourceStore } from '../control/resources.js';

export type ServedKind = 'Network' | 'Subnet' | 'Lease' | 'Node';
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

export interface ServedResource {
  kind: ServedKind;
  plural: string;
  singular: string;
  shortNames: string[];
  verbs: Verb[];
  /** Field selectors beyond metadata.name, with how to read them from an object. */
  fields: Record<string, (o: Printable) => string | undefined>;
}

const READ: Verb[] = ['get', 'list', 'watch'];
const WRITE: Verb[] = ['create', 'update', 'patch', 'delete'];
const specNetwork = (o: Printable) => ('spec' in o ? (o.spec as { network?: string }).network : undefined);

export const RESOURCES: ServedResource[] = [
  { kind: 'Network', plural: 'networks', singular: 'network', shortNames: ['net'], verbs: [...READ, ...WRITE], fields: {} },
  { kind: 'Subnet', plural: 'subnets', singular: 'subnet', shortNames: ['sn'], verbs: [...READ, ...WRITE], fields: { 'spec.network': specNetwork } },
  // Agents write leases; people may only delete them (as with `weft delete lease`).
  { kind: 'Lease', plural: 'leases', singular: 'lease', shortNames: [], verbs: [...READ, 'delete'], fields: { 'spec.network': specNetwork } },
  {
    kind: 'Node',
    plural: 'nodes',
    singular: 'node',
    shortNames: ['no'],
    verbs: READ,
    fields: { 'status.network': (o) => (o.kind === 'Node' ? o.status.network : undefined) },
  },
];

export function resourceByPlural(plural: string): ServedResource | undefined {
  return RESOURCES.find((r) => r.plural === plural);
}

/** Every object of one kind in a snapshot, with its row of the -o wide table. */
export interface KindList {
  items: Printable[];
  /** The -o wide table; rows[i] is items[i]'s. */
  cells: Cells;
  /** How many leading columns the plain table has (the rest are -o wide's). */
  narrow: number;
}

function showNetworkColumn(networks: string[]): boolean {
  const set = new Set(networks);
  return set.size > 1 || [...set].some((n) => n !== 'default');
}

export async function listKind(rs: ResourceStore, snap: Snapshot, kind: ServedKind, now: number): Promise<KindList> {
  switch (kind) {
    case 'Network': {
      const views = networkViews(snap);
      return { items: views.map((v) => v.resource), cells: networkCells(views, true, now), narrow: networkCells([], false, now).header.length };
    }
    case 'Subnet': {
      const subnets = subnetViews(snap, rs.layout);
      return { items: subnets, cells: subnetCells(subnets, true, now), narrow: subnetCells([], false, now).header.length };
    }
    case 'Lease': {
      const rows = await rs.leaseRowsOf(snap, undefined, undefined);
      const leases = rows.map((r) => r.lease);
      const nodes = rows.map((r) => r.node);
      const show = showNetworkColumn(leases.map((l) => l.spec.network));
      return {
        items: leases,
        cells: leaseCells(leases, true, now, show, nodes),
        narrow: leaseCells([], false, now, show).header.length,
      };
    }
    case 'Node': {
      const views = nodeViews(snap, rs.layout);
      const show = showNetworkColumn(views.map((v) => v.resource.status.network));
      return { items: views.map((v) => v.resource), cells: nodeCells(views, true, now, show), narrow: nodeCells([], false, now, show).header.length };
    }
  }
}

/**
 * An object's identity in a list: its name, and for leases and nodes also its network (two
 * networks may hold a lease key, or a node, of the same name).
 */
export function identity(o: Printable): string {
  if (o.kind === 'Lease') return `${o.spec.network}/${o.metadata.name}`;
  if (o.kind === 'Node') return `${o.status.network}/${o.metadata.name}`;
  return o.metadata.name;
}
