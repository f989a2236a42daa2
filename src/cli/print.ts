// Output of `weft get`: kubectl-like tables (plain and wide), YAML, JSON and names.
import { stringify } from 'yaml';
import type { NetworkView } from '../api/convert.js';
import { formatDuration } from '../api/duration.js';
import type { LeaseResource, Resource, SubnetResource } from '../api/types.js';
import { refOf } from '../store/resource-plan.js';

export type OutputFormat = 'table' | 'wide' | 'yaml' | 'json' | 'name';
export const OUTPUT_FORMATS: OutputFormat[] = ['table', 'wide', 'yaml', 'json', 'name'];

const NONE = '<none>';

/** Columns padded to their widest cell with three spaces between, like kubectl. */
export function table(header: string[], rows: string[][]): string {
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

export function networkTable(views: NetworkView[], wide: boolean, now: number): string {
  const header = ['NAME', 'CIDR', 'SUBNETLEN', 'BACKEND', 'CAPACITY', 'LEASES', 'FREE', 'AGE'];
  if (wide) header.push('RESERVED', 'SUBNETMIN', 'SUBNETMAX', 'VNI', 'PORT', 'LEASETTL', 'PROBLEM');
  const rows = views.map(({ resource: r, config, problem }) => {
    const s = r.status;
    const row = [
      r.metadata.name,
      r.spec.cidr || NONE,
      String(config?.subnetLen ?? r.spec.subnetLength ?? '?'),
      r.spec.backend.type || NONE,
      s ? String(s.capacity) : '?',
      s ? String(s.leases) : '?',
      s ? String(s.free) : '?',
      age(r.metadata.creationTimestamp, now),
    ];
    if (wide) {
      row.push(
        s ? String(s.reservations) : '?',
        config ? String(config.subnetMin) : '?',
        config ? String(config.subnetMax) : '?',
        config?.backend.type === 'vxlan' ? String(config.backend.vni) : NONE,
        config?.backend.type === 'vxlan' ? String(config.backend.port || 8472) : NONE,
        r.spec.leaseTTL ?? '24h',
        problem ?? NONE,
      );
    }
    return row;
  });
  return table(header, rows);
}

export function subnetTable(subnets: SubnetResource[], wide: boolean, now: number): string {
  const header = ['NAME', 'NETWORK', 'CIDR', 'NODE', 'PUBLIC-IP', 'AGE'];
  if (wide) header.push('ADOPTED-BY', 'VTEP-MAC');
  const rows = subnets.map((s) => {
    const row = [
      s.metadata.name,
      s.spec.network,
      s.spec.cidr,
      s.spec.node ?? NONE,
      s.spec.publicIP ?? NONE,
      age(s.metadata.creationTimestamp, now),
    ];
    if (wide) row.push(s.status?.adoptedBy ?? NONE, s.status?.vtepMAC ?? NONE);
    return row;
  });
  return table(header, rows);
}

export function leaseTable(leases: LeaseResource[], wide: boolean, now: number, showNetwork: boolean): string {
  const header = ['NAME', 'NODE', 'PUBLIC-IP', 'BACKEND', 'VTEP-MAC', 'AGE', 'EXPIRES'];
  if (showNetwork) header.unshift('NETWORK');
  if (wide) header.push('VNI', 'SUBNET');
  const rows = leases.map((l) => {
    const s = l.spec;
    const expires = s.reserved
      ? '<reserved>'
      : s.expiry
        ? formatDuration(Math.max(0, Date.parse(s.expiry) - now))
        : '<expired>';
    const row = [
      l.metadata.name,
      s.node ?? NONE,
      s.publicIP || NONE,
      s.backend.type || NONE,
      s.backend.vtepMAC ?? NONE,
      age(l.metadata.creationTimestamp, now),
      expires,
    ];
    if (showNetwork) row.unshift(s.network);
    if (wide) row.push(s.backend.vni !== undefined ? String(s.backend.vni) : NONE, s.subnet || NONE);
    return row;
  });
  return table(header, rows);
}

export function yamlOf(r: Resource): string {
  return stringify(r, { lineWidth: 0 });
}

/** One object as itself; several as a multi-document stream (YAML) or a List (JSON). */
export function serialize(items: Resource[], format: 'yaml' | 'json' | 'name', single: boolean): string {
  if (format === 'name') return items.map((r) => refOf(r.kind, r.metadata.name) + '\n').join('');
  if (format === 'json') {
    const body = single ? items[0] : { apiVersion: 'v1', kind: 'List', items };
    return JSON.stringify(body, null, 2) + '\n';
  }
  return items.map((r, i) => (i > 0 || !single ? '---\n' : '') + yamlOf(r)).join('');
}
