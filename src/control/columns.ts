// The cells of weft's tables: `weft get` prints them padded like kubectl, and `weft serve`
// answers kubectl's Table requests with them, so both front ends show the same columns.
import type { NetworkView } from '../api/convert.js';
import { formatDuration } from '../api/duration.js';
import { DEFAULT_LEASE_TTL, DEFAULT_VXLAN_PORT } from '../api/network.js';
import type { LeaseResource, SubnetResource } from '../api/types.js';
import { printable } from '../printable.js';
import type { NodeStatusRecord } from '../store/store.js';
import type { NodeView } from './views.js';

export const NONE = '<none>';

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
