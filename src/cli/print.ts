// Output of `weft get`: kubectl-like tables (plain and wide), YAML, JSON and names.
import { stringify } from 'yaml';
import type { NetworkView } from '../api/convert.js';
import { formatDuration } from '../api/duration.js';
import { DEFAULT_LEASE_TTL, DEFAULT_VXLAN_PORT } from '../api/network.js';
import { printable } from '../printable.js';
import type { LeaseResource, Printable, SubnetResource } from '../api/types.js';
import { refOf } from '../control/plan.js';
import type { NodeView } from '../control/views.js';
import type { LeaseDescription } from '../control/resources.js';
import type { NodeStatusRecord } from '../store/store.js';

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json' | 'name';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'wide', 'yaml', 'json', 'name'];

const NONE = '<none>';

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

export function age(timestamp: string | undefined, now: number): string {
  if (!timestamp) return '<unknown>';
  const t = Date.parse(timestamp);
  return Number.isNaN(t) ? '<unknown>' : formatDuration(Math.max(0, now - t)) || '0s';
}

/** One cell for both stacks: "IPv4,IPv6" (kubectl's way with dual-stack values); empty ones left out. */
function perStack(...values: (string | number | undefined)[]): string {
  return values.filter((v) => v !== undefined && v !== '').join(',');
}

/** Header and cells of a table; `weft serve` answers kubectl's Table requests with them. */
export interface Cells {
  header: string[];
  rows: string[][];
}

export function networkTable(views: NetworkView[], wide: boolean, now: number): string {
  const { header, rows } = networkCells(views, wide, now);
  return table(header, rows);
}

export function networkCells(views: NetworkView[], wide: boolean, now: number): Cells {
  const header = ['NAME', 'CIDR', 'SUBNETLEN', 'BACKEND', 'CAPACITY', 'LEASES', 'FREE', 'AGE'];
  if (wide) header.push('RESERVED', 'SUBNETMIN', 'SUBNETMAX', 'VNI', 'PORT', 'LEASETTL', 'PROBLEM');
  const rows = views.map(({ resource: r, config, problem }) => {
    const s = r.status;
    const v4 = config?.ipv4;
    const v6 = config?.ipv6;
    const row = [
      r.metadata.name,
      perStack(r.spec.cidr, r.spec.ipv6Cidr) || NONE,
      config ? perStack(v4?.subnetLen, v6?.subnetLen) : perStack(r.spec.subnetLength, r.spec.ipv6SubnetLength) || '?',
      r.spec.backend.type || NONE,
      s ? perStack(s.capacity, s.ipv6Capacity) : '?',
      s ? String(s.leases) : '?',
      s ? perStack(s.free, s.ipv6Free) : '?',
      age(r.metadata.creationTimestamp, now),
    ];
    if (wide) {
      row.push(
        s ? String(s.reservations) : '?',
        config ? perStack(v4?.subnetMin.toString(), v6?.subnetMin.toString()) : '?',
        config ? perStack(v4?.subnetMax.toString(), v6?.subnetMax.toString()) : '?',
        config?.backend.type === 'vxlan' ? String(config.backend.vni) : NONE,
        config?.backend.type === 'vxlan' ? String(config.backend.port || DEFAULT_VXLAN_PORT) : NONE,
        r.spec.leaseTTL ?? DEFAULT_LEASE_TTL,
        problem ?? NONE,
      );
    }
    return row;
  });
  return { header, rows };
}

export function subnetTable(subnets: SubnetResource[], wide: boolean, now: number): string {
  const { header, rows } = subnetCells(subnets, wide, now);
  return table(header, rows);
}

export function subnetCells(subnets: SubnetResource[], wide: boolean, now: number): Cells {
  const header = ['NAME', 'NETWORK', 'CIDR', 'NODE', 'PUBLIC-IP', 'AGE'];
  if (wide) header.push('ADOPTED-BY', 'VTEP-MAC');
  const rows = subnets.map((s) => {
    const row = [
      s.metadata.name,
      s.spec.network,
      perStack(s.spec.cidr, s.spec.ipv6Cidr) || NONE,
      s.spec.node ?? NONE,
      s.spec.publicIP ?? s.spec.publicIPv6 ?? NONE,
      age(s.metadata.creationTimestamp, now),
    ];
    if (wide) row.push(s.status?.adoptedBy ?? NONE, s.status?.vtepMAC ?? NONE);
    return row;
  });
  return { header, rows };
}

/**
 * The node status cells of a lease's row: READY is yes or no from a readable record, unknown
 * without one (a flanneld host, an agent gone for longer than the record's TTL) or from an
 * unreadable one.
 */
export function statusCells(node: NodeStatusRecord | undefined, now: number): { ready: string; peers: string; lastSync: string; version: string } {
  if (!node?.status.ok) return { ready: 'unknown', peers: NONE, lastSync: NONE, version: NONE };
  const s = node.status.value;
  return {
    ready: s.ready ? 'yes' : 'no',
    peers: `${s.peers.programmed}/${s.peers.desired}`,
    lastSync: s.lastSync ? age(s.lastSync, now) : NONE,
    version: s.version,
  };
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

export function leaseCells(leases: LeaseResource[], wide: boolean, now: number, showNetwork: boolean, nodes: (NodeStatusRecord | undefined)[] = []): Cells {
  const header = ['NAME', 'NODE', 'PUBLIC-IP', 'BACKEND', 'VTEP-MAC', 'AGE', 'EXPIRES'];
  if (showNetwork) header.unshift('NETWORK');
  const v6 = leases.some((l) => l.spec.ipv6Subnet !== undefined);
  if (wide) header.push('VNI', 'SUBNET');
  if (wide && v6) header.push('IPV6-SUBNET', 'PUBLIC-IPV6', 'IPV6-VTEP-MAC');
  if (wide) header.push('READY', 'PEERS', 'LAST-SYNC', 'VERSION');
  const rows = leases.map((l, i) => {
    const s = l.spec;
    const expires = s.reserved
      ? '<reserved>'
      : s.expiry
        ? formatDuration(Math.max(0, Date.parse(s.expiry) - now))
        : '<expired>';
    const row = [
      l.metadata.name,
      s.node ?? NONE,
      s.publicIP || s.publicIPv6 || NONE,
      s.backend.type || NONE,
      s.backend.vtepMAC ?? s.backend.ipv6VtepMAC ?? NONE,
      age(l.metadata.creationTimestamp, now),
      expires,
    ];
    if (showNetwork) row.unshift(s.network);
    if (wide) row.push(s.backend.vni !== undefined ? String(s.backend.vni) : NONE, s.subnet || NONE);
    if (wide && v6) row.push(s.ipv6Subnet ?? NONE, s.publicIPv6 ?? NONE, s.backend.ipv6VtepMAC ?? NONE);
    if (wide) {
      const c = statusCells(nodes[i], now);
      row.push(c.ready, c.peers, c.lastSync, c.version);
    }
    return row.map(printable);
  });
  return { header, rows };
}

export function nodeTable(views: NodeView[], wide: boolean, now: number, showNetwork: boolean): string {
  const { header, rows } = nodeCells(views, wide, now, showNetwork);
  return table(header, rows);
}

export function nodeCells(views: NodeView[], wide: boolean, now: number, showNetwork: boolean): Cells {
  const header = ['NAME', 'READY', 'SUBNET', 'PEERS', 'LAST-SYNC', 'VERSION', 'AGE'];
  if (showNetwork) header.unshift('NETWORK');
  if (wide) header.push('LEASE', 'PUBLIC-IP', 'REASON');
  const rows = views.map(({ record, resource: r }) => {
    const s = r.status;
    const c = statusCells(record, now);
    const row = [r.metadata.name, c.ready, s.subnet ?? NONE, c.peers, c.lastSync, c.version, record.status.ok ? age(r.metadata.creationTimestamp, now) : '<unknown>'];
    if (showNetwork) row.unshift(record.network ?? '<unknown>');
    if (wide) {
      const lease = s.lease === undefined ? NONE : s.leaseFound === false ? `${s.lease} (gone)` : s.lease;
      row.push(lease, s.publicIP ?? NONE, record.status.ok ? (s.reason ?? NONE) : 'unreadable record');
    }
    return row.map(printable);
  });
  return { header, rows };
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
