// Output of `weft get`: kubectl-like tables (plain and wide), YAML, JSON and names.
import { stringify } from 'yaml';
import type { NetworkView } from '../api/convert.js';
import { formatDuration } from '../api/duration.js';
import { printable } from '../printable.js';
import type { LeaseResource, Printable, SubnetResource } from '../api/types.js';
import { age, leaseCells, networkCells, NONE, nodeCells, subnetCells } from '../control/columns.js';
import { refOf } from '../control/plan.js';
import type { NodeView } from '../control/views.js';
import type { LeaseDescription } from '../control/resources.js';
import type { NodeStatusRecord } from '../store/store.js';

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json' | 'name';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'wide', 'yaml', 'json', 'name'];

/**
 * Output echoes names and fields from hostile input: control characters (a terminal escape,
 * a newline forging a second line, a bidi override) are shown as \\u escapes.
 */
export { printable };

/**
 * Columns padded to their widest cell with three spaces between, like kubectl. Every cell
 * goes through printable() here, so no table can print a hostile value raw.
 */
export function table(header: string[], rawRows: string[][]): string {
  const rows = rawRows.map((r) => r.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function networkTable(views: NetworkView[], wide: boolean, now: number): string {
  const { header, rows } = networkCells(views, wide, now);
  return table(header, rows);
}

export function subnetTable(subnets: SubnetResource[], wide: boolean, now: number): string {
  const { header, rows } = subnetCells(subnets, wide, now);
  return table(header, rows);
}

/**
 * `nodes[i]` is the status record of `leases[i]`'s holder (only read for wide).
 * PUBLIC-IP and VTEP-MAC show the IPv4 stack's values, or the IPv6 stack's for an IPv6-only
 * lease; `-o wide` adds IPV6-SUBNET, PUBLIC-IPV6 and IPV6-VTEP-MAC when a lease has IPv6.
 */
export function leaseTable(leases: LeaseResource[], wide: boolean, now: number, showNetwork: boolean, nodes: (NodeStatusRecord | undefined)[] = []): string {
  const { header, rows } = leaseCells(leases, wide, now, showNetwork, nodes);
  return table(header, rows);
}

export function nodeTable(views: NodeView[], wide: boolean, now: number, showNetwork: boolean): string {
  const { header, rows } = nodeCells(views, wide, now, showNetwork);
  return table(header, rows);
}

/** One line per unreadable status record, naming its key (for stderr). */
export function statusWarnings(records: (NodeStatusRecord | undefined)[]): string {
  const seen = new Set<string>();
  let out = '';
  for (const r of records) {
    if (!r || r.status.ok || seen.has(r.kv.key)) continue;
    seen.add(r.kv.key);
    out += printable(`warning: unreadable node status at ${r.kv.key}: ${r.status.error}`) + '\n';
  }
  return out;
}

function when(timestamp: string | undefined, now: number): string {
  if (!timestamp) return NONE;
  return `${age(timestamp, now)} ago (${timestamp})`;
}

/** `weft describe lease`: the key, its value's fields, its etcd lease or reservation, and its holder's status. */
export function describeLease(d: LeaseDescription, now: number): string {
  const l = d.lease;
  const s = l.spec;
  const lines: [string, string][] = [
    ['Name', l.metadata.name],
    ['Network', s.network],
    ['Key', d.record.kv.key],
    ['Subnet', s.subnet || NONE],
    ['Node', s.node ?? NONE],
    ['Public IP', s.publicIP || NONE],
    ['Backend', s.backend.type ? [s.backend.type, s.backend.vni !== undefined ? `VNI ${s.backend.vni}` : '', s.backend.vtepMAC ? `VTEP MAC ${s.backend.vtepMAC}` : ''].filter(Boolean).join(', ') : `${NONE} (not adopted by an agent yet)`],
  ];
  const invalid = l.metadata.annotations?.['weft.io/invalid-value'];
  if (invalid) lines.push(['Invalid Value', invalid]);
  lines.push(['Value', d.record.kv.value.length > 512 ? `${d.record.kv.value.slice(0, 509)}...` : d.record.kv.value]);
  lines.push(['Resource Version', String(d.record.kv.modRevision)]);
  if (d.record.reserved) {
    lines.push(['Etcd Lease', `${NONE} (a reservation: it never expires)`]);
  } else {
    const id = BigInt(d.record.kv.leaseId).toString(16);
    lines.push(['Etcd Lease', d.ttl ? `${id}, TTL ${d.ttl.granted}s, ${formatDuration(d.ttl.ttl * 1000)} left (expires ${s.expiry ?? '?'})` : `${id} (expired)`]);
  }
  for (const why of d.screened ?? []) lines.push(['Left Out', `by every agent: ${why}`]);
  lines.push(['Reservation', d.reservation ? `subnet/${d.reservation.name}${d.reservation.node ? ` for node ${d.reservation.node}` : ''}${d.reservation.publicIP ? ` for public IP ${d.reservation.publicIP}` : ''}` : NONE]);
  const out = lines.map(([k, v]) => `${(k + ':').padEnd(18)}${v}`);
  out.push(...describeNodeStatus(d, now));
  return out.map(printable).join('\n') + '\n';
}

function describeNodeStatus(d: LeaseDescription, now: number): string[] {
  const node = d.node;
  if (!node) {
    return [`${'Node Status:'.padEnd(18)}${NONE} (no record: a flanneld host, a stopped agent, or one gone longer than the record's TTL)`];
  }
  if (!node.status.ok) return [`${'Node Status:'.padEnd(18)}unreadable record at ${node.kv.key}: ${node.status.error}`];
  const v = node.status.value;
  const rows: [string, string][] = [
    ['Key', node.kv.key],
    ['Ready', v.ready ? 'yes' : `no: ${v.reason ?? 'no reason given'}`],
    ['Peers', `${v.peers.programmed} programmed of ${v.peers.desired} desired${v.peers.skipped ? ` (${v.peers.skipped} left out on purpose)` : ''}`],
    ['Last Sync', when(v.lastSync, now)],
    ['Version', v.version],
    ['Started', when(v.startedAt, now)],
    ['Published', when(v.publishedAt, now)],
  ];
  if (v.lease !== d.record.name) rows.push(['Reports Lease', v.lease ?? NONE]);
  if (v.publicIP !== undefined && v.publicIP !== d.lease.spec.publicIP) rows.push(['Public IP', v.publicIP]);
  if (v.subnetIPv6) rows.push(['Subnet IPv6', v.subnetIPv6]);
  if (v.publicIPv6) rows.push(['Public IPv6', v.publicIPv6]);
  return ['Node Status:', ...rows.map(([k, val]) => `  ${(k + ':').padEnd(16)}${val}`)];
}

export function yamlOf(r: Printable): string {
  return stringify(r, { lineWidth: 0 });
}

/** One object as itself; several as a multi-document stream (YAML) or a List (JSON). */
export function serialize(items: Printable[], format: 'yaml' | 'json' | 'name', single: boolean): string {
  if (format === 'name') return items.map((r) => printable(refOf(r.kind, r.metadata.name)) + '\n').join('');
  if (format === 'json') {
    const body = single ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    return JSON.stringify(body, null, 2) + '\n';
  }
  return items.map((r, i) => (i > 0 || !single ? '---\n' : '') + yamlOf(r)).join('');
}
