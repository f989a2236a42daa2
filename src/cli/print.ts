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

/** One cell for both stacks: "IPv4,IPv6" (kubectl's way with dual-stack values); empty ones left out. */
function perStack(...values: (string | number | undefined)[]): string {
  return values.filter((v) => v !== undefined && v !== '').join(',');
}

export function networkTable(views: NetworkView[], wide: boolean, now: number): string {
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
      perStack(s.spec.cidr, s.spec.ipv6Cidr) || NONE,
      s.spec.node ?? NONE,
      s.spec.publicIP ?? s.spec.publicIPv6 ?? NONE,
      age(s.metadata.creationTimestamp, now),
    ];
    if (wide) row.push(s.status?.adoptedBy ?? NONE, s.status?.vtepMAC ?? NONE);
    return row;
  });
  return table(header, rows);
}

/**
 * PUBLIC-IP and VTEP-MAC show the IPv4 stack's values, or the IPv6 stack's for an IPv6-only
 * lease; `-o wide` adds IPV6-SUBNET, PUBLIC-IPV6 and IPV6-VTEP-MAC when a lease has IPv6.
 */
export function leaseTable(leases: LeaseResource[], wide: boolean, now: number, showNetwork: boolean): string {
  const header = ['NAME', 'NODE', 'PUBLIC-IP', 'BACKEND', 'VTEP-MAC', 'AGE', 'EXPIRES'];
  if (showNetwork) header.unshift('NETWORK');
  const v6 = leases.some((l) => l.spec.ipv6Subnet !== undefined);
  if (wide) header.push('VNI', 'SUBNET');
  if (wide && v6) header.push('IPV6-SUBNET', 'PUBLIC-IPV6', 'IPV6-VTEP-MAC');
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
      s.publicIP || s.publicIPv6 || NONE,
      s.backend.type || NONE,
      s.backend.vtepMAC ?? s.backend.ipv6VtepMAC ?? NONE,
      age(l.metadata.creationTimestamp, now),
      expires,
    ];
    if (showNetwork) row.unshift(s.network);
    if (wide) row.push(s.backend.vni !== undefined ? String(s.backend.vni) : NONE, s.subnet || NONE);
    if (wide && v6) row.push(s.ipv6Subnet ?? NONE, s.publicIPv6 ?? NONE, s.backend.ipv6VtepMAC ?? NONE);
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
