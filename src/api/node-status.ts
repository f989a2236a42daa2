// The node status record an agent publishes at <prefix>/_weft/nodes/<network>/<node>: a small,
// versioned JSON object saying how far the host got (lease, dataplane, readiness). It lives
// under its own short etcd lease, so it vanishes when the agent dies.
//
// Anything can write to etcd: decodeNodeStatus checks every field (type, form, size) so the
// CLI prints only what it validated, and a bad record becomes an error naming what is wrong.
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../alloc/cidr.js';
import { describeValue, parseJsonObject, pickFields, type FieldSpec } from './json.js';
import { isValidNodeName, parseLeaseKey, type Decoded } from './lease.js';
import { isPrintable } from '../printable.js';

export const NODE_STATUS_VERSION = 1;
/** Records are a few hundred bytes; anything much larger was not written by an agent. */
export const MAX_NODE_STATUS_BYTES = 4096;
export const MAX_REASON_LENGTH = 256;
/** More peers than any fleet weft is built for: a counter above it is garbage. */
const MAX_PEERS = 10_000_000;

export interface PeerCounts {
  /** Peer leases the agent accepted (valid, same backend, not overlapping an older one). */
  desired: number;
  /** Of those, the peers whose kernel entries are in place after the last reconcile. */
  programmed: number;
  /** Of those, the peers the dataplane leaves out on purpose (e.g. a subnet outside the network). */
  skipped: number;
}

export interface NodeStatus {
  v: typeof NODE_STATUS_VERSION;
  nodeName: string;
  network: string;
  /** The lease's name, its key under <network>/subnets/ ("10.5.3.0-24"); absent until acquired. */
  lease?: string;
  subnet?: string;
  /** Reserved for the IPv6 half of a dual-stack lease. */
  subnetIPv6?: string;
  publicIP?: string;
  publicIPv6?: string;
  reserved?: boolean;
  peers: PeerCounts;
  /** When the last reconcile without kernel failures ended (RFC 3339). */
  lastSync?: string;
  ready: boolean;
  /** Why the node is not ready; absent when it is. */
  reason?: string;
  version: string;
  startedAt: string;
  publishedAt: string;
}

/** The record's fields in their fixed order, so that equal records are equal bytes. */
const NODE_STATUS_FIELDS: readonly FieldSpec<NodeStatus>[] = [
  'v', 'nodeName', 'network', 'lease?', 'subnet?', 'subnetIPv6?', 'publicIP?', 'publicIPv6?', 'reserved?',
  'peers', 'lastSync?', 'ready', 'reason?', 'version', 'startedAt', 'publishedAt',
];
const PEER_COUNT_FIELDS: readonly FieldSpec<PeerCounts>[] = ['desired', 'programmed', 'skipped'];

export function encodeNodeStatus(s: NodeStatus): string {
  return JSON.stringify(pickFields({ ...s, peers: pickFields(s.peers, PEER_COUNT_FIELDS) as PeerCounts }, NODE_STATUS_FIELDS));
}

const NETWORK_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const VERSION_TEXT = /^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/;
/** RFC 3339 in UTC, as Date.toISOString writes it (milliseconds optional). */
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;

export function isTimestamp(v: unknown): v is string {
  return typeof v === 'string' && TIMESTAMP.test(v) && !Number.isNaN(Date.parse(v));
}

export function decodeNodeStatus(text: string): Decoded<NodeStatus> {
  const fail = (error: string): Decoded<NodeStatus> => ({ ok: false, error });
  const parsed = parseJsonObject(text, MAX_NODE_STATUS_BYTES);
  if (!parsed.ok) return parsed;
  const o = parsed.value;
  if (o.v !== NODE_STATUS_VERSION) return fail(`v ${describeValue(o.v)} is not a status version this weft reads (${NODE_STATUS_VERSION})`);

  const problems: string[] = [];
  const check = (ok: boolean, field: string, what: string) => {
    if (!ok) problems.push(`${field} ${describeValue(o[field])} is not ${what}`);
  };
  const optional = (field: string, ok: (v: unknown) => boolean, what: string) => {
    if (o[field] !== undefined) check(ok(o[field]), field, what);
  };
  check(isValidNodeName(o.nodeName), 'nodeName', 'a node name');
  check(typeof o.network === 'string' && NETWORK_NAME.test(o.network), 'network', 'a network name');
  optional('lease', (v) => typeof v === 'string' && v.length <= 100 && parseLeaseKey(v) !== undefined, 'a lease name (a.b.c.d-n)');
  optional('subnet', (v) => Cidr.parse(v, { strict: true }) !== undefined, 'an IPv4 subnet');
  optional('subnetIPv6', (v) => Cidr6.parse(v, { strict: true }) !== undefined, 'an IPv6 subnet');
  optional('publicIP', (v) => Ipv4.parse(v) !== undefined, 'an IPv4 address');
  optional('publicIPv6', (v) => typeof v === 'string' && v.length <= 45 && Ipv6.parse(v) !== undefined, 'an IPv6 address');
  optional('reserved', (v) => typeof v === 'boolean', 'true or false');
  optional('lastSync', isTimestamp, 'an RFC 3339 UTC time');
  check(typeof o.ready === 'boolean', 'ready', 'true or false');
  optional('reason', (v) => typeof v === 'string' && v.length <= MAX_REASON_LENGTH && isPrintable(v), `printable text of at most ${MAX_REASON_LENGTH} characters`);
  check(typeof o.version === 'string' && VERSION_TEXT.test(o.version), 'version', 'a version');
  check(isTimestamp(o.startedAt), 'startedAt', 'an RFC 3339 UTC time');
  check(isTimestamp(o.publishedAt), 'publishedAt', 'an RFC 3339 UTC time');
  const peers = decodePeers(o.peers);
  if (typeof peers === 'string') problems.push(peers);
  if (problems.length > 0) return fail(problems.join('; '));

  // Every field is checked: the record is the listed fields of what was read.
  return { ok: true, value: pickFields({ ...o, peers } as NodeStatus, NODE_STATUS_FIELDS) as NodeStatus };
}

function decodePeers(v: unknown): PeerCounts | string {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return `peers ${describeValue(v)} is not an object`;
  const p = v as Record<string, unknown>;
  const out: Record<string, number> = {};
  for (const field of ['desired', 'programmed', 'skipped'] as const) {
    const n = p[field];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > MAX_PEERS) {
      return `peers.${field} ${describeValue(n)} is not a count`;
    }
    out[field] = n;
  }
  if (out.programmed! > out.desired!) return `peers.programmed ${out.programmed} is more than peers.desired ${out.desired}`;
  return { desired: out.desired!, programmed: out.programmed!, skipped: out.skipped! };
}
