// Store records <-> resources. Pure: the store layer reads and writes keys, this module only
// says what a set of keys means as a Network, Subnet or Lease, and which bytes a resource
// becomes.
import { Cidr, Cidr6, Ipv6 } from '../alloc/cidr.js';
import type { KV, NetworkMeta, NodeStatusRecord, SubnetRecord } from './records.js';
import { encodeLease, formatLeaseKey, isPlaceholderPublicIP, isValidNodeName, leaseResourceName, NO_PUBLIC_IP, RESERVATION_PUBLIC_IP, type LeaseKey, type LeaseValue } from './lease.js';
import { optional, parseJsonObject, pickFields, type FieldSpec } from './json.js';
import { decodeFlannelConfig, encodeFlannelConfig, ipv4Capacity, ipv6Capacity, keyFits, resolveNetwork, type NetworkConfig } from './network.js';
import {
  API_VERSION,
  type BackendSpec,
  type LeaseResource,
  type NetworkResource,
  type NodeResource,
  type NodeResourceStatus,
  type NetworkSpec,
  type NetworkStatus,
  type ObjectMeta,
  type SubnetResource,
  type SubnetSpec,
} from './types.js';

/** weft's record of a Subnet reservation, at <prefix>/_weft/subnets/<name>: its spec and metadata. */
export interface SubnetMeta extends SubnetSpec {
  uid: string;
  creationTimestamp: string;
  generation: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const MAX_META_BYTES = 64 * 1024;

function parseObject(text: string): Record<string, unknown> | undefined {
  const parsed = parseJsonObject(text, MAX_META_BYTES);
  return parsed.ok ? parsed.value : undefined;
}

function stringMap(v: unknown): Record<string, string> | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, s] of Object.entries(v)) if (typeof s === 'string') out[k] = s;
  return Object.keys(out).length ? out : undefined;
}

function common(o: Record<string, unknown>) {
  return {
    uid: typeof o.uid === 'string' ? o.uid : '',
    creationTimestamp: typeof o.creationTimestamp === 'string' ? o.creationTimestamp : '',
    generation: typeof o.generation === 'number' && Number.isInteger(o.generation) ? o.generation : 1,
    ...optional('labels', stringMap(o.labels)),
    ...optional('annotations', stringMap(o.annotations)),
  };
}

/** Reads a network meta value; hostile input yields undefined rather than a crash. */
export function parseNetworkMeta(text: string): NetworkMeta | undefined {
  const o = parseObject(text);
  if (!o) return undefined;
  return { ...common(o), ...optional('leaseTTL', typeof o.leaseTTL === 'string' ? o.leaseTTL : undefined) };
}

export function parseSubnetMeta(text: string): SubnetMeta | undefined {
  const o = parseObject(text);
  if (!o || typeof o.network !== 'string') return undefined;
  const v4ok = o.cidr === undefined || (typeof o.cidr === 'string' && Cidr.parse(o.cidr, { strict: true }) !== undefined);
  const v6ok = o.ipv6Cidr === undefined || (typeof o.ipv6Cidr === 'string' && Cidr6.parse(o.ipv6Cidr, { strict: true }) !== undefined);
  if (!v4ok || !v6ok || (o.cidr === undefined && o.ipv6Cidr === undefined)) return undefined;
  return {
    network: o.network,
    ...optional('cidr', o.cidr as string | undefined),
    ...optional('ipv6Cidr', o.ipv6Cidr as string | undefined),
    ...optional('node', isValidNodeName(o.node) ? o.node : undefined),
    ...optional('publicIP', typeof o.publicIP === 'string' ? o.publicIP : undefined),
    ...optional('publicIPv6', typeof o.publicIPv6 === 'string' && Ipv6.parse(o.publicIPv6) ? o.publicIPv6 : undefined),
    ...common(o),
  };
}

/** The subnets a reservation names (its key is formatLeaseKey of them). */
export function subnetsOfMeta(m: Pick<SubnetMeta, 'cidr' | 'ipv6Cidr'>): LeaseKey {
  const ipv4 = m.cidr !== undefined ? Cidr.parse(m.cidr, { strict: true }) : undefined;
  const ipv6 = m.ipv6Cidr !== undefined ? Cidr6.parse(m.ipv6Cidr, { strict: true }) : undefined;
  return { ...optional('ipv4', ipv4), ...optional('ipv6', ipv6) };
}

/** The subnets key (last segment) of a reservation's meta. */
export function keyNameOfMeta(m: Pick<SubnetMeta, 'cidr' | 'ipv6Cidr'>): string {
  return formatLeaseKey(subnetsOfMeta(m));
}

// Field lists: they fix the key order, so that equal records are equal bytes (and a spec
// reads in the order users write it, as the CRD lists it).
const META_FIELDS = ['uid', 'creationTimestamp', 'generation', 'labels', 'annotations'] as const;
const NETWORK_META_FIELDS: readonly FieldSpec<NetworkMeta>[] = [...META_FIELDS, 'leaseTTL?'];
const SUBNET_SPEC_FIELDS = ['network', 'cidr?', 'ipv6Cidr?', 'node?', 'publicIP?', 'publicIPv6?'] as const satisfies readonly FieldSpec<SubnetSpec>[];
const SUBNET_META_FIELDS: readonly FieldSpec<SubnetMeta>[] = [...SUBNET_SPEC_FIELDS, ...META_FIELDS];
const NETWORK_SPEC_FIELDS: readonly FieldSpec<NetworkSpec>[] = [
  'cidr?', 'subnetLength?', 'subnetMin?', 'subnetMax?',
  'ipv6Cidr?', 'ipv6SubnetLength?', 'ipv6SubnetMin?', 'ipv6SubnetMax?',
  'backend', 'leaseTTL?',
];
const BACKEND_FIELDS: readonly FieldSpec<BackendSpec>[] = ['type', 'vni?', 'port?', 'mtu?', 'directRouting?', 'gbp?'];
const NODE_VIEW_FIELDS: readonly FieldSpec<NodeResourceStatus>[] = [
  'network', 'ready', 'reason?', 'lease?', 'leaseFound?', 'subnet?', 'subnetIPv6?', 'publicIP?', 'publicIPv6?', 'reserved?',
  'peers', 'lastSync?', 'version', 'startedAt', 'publishedAt',
];

/** Labels and annotations are written even when empty. */
function withEmptyMaps<M extends Pick<NetworkMeta, 'labels' | 'annotations'>>(m: M): M {
  return { ...m, labels: m.labels ?? {}, annotations: m.annotations ?? {} };
}

export function encodeNetworkMeta(m: NetworkMeta): string {
  return JSON.stringify(pickFields(withEmptyMaps(m), NETWORK_META_FIELDS));
}

export function encodeSubnetMeta(m: SubnetMeta): string {
  return JSON.stringify(pickFields(withEmptyMaps(m), SUBNET_META_FIELDS));
}

/**
 * The value a fresh reservation key holds: no BackendType, so peers (weft and flanneld alike)
 * ignore it until adopted; without a public IP, a PublicIP no host has, so that no flanneld
 * host takes it for its own lease (docs/flanneld.md, "Reservations").
 */
export function reservationValue(spec: SubnetSpec): string {
  return encodeLease({
    publicIP: spec.publicIP ?? RESERVATION_PUBLIC_IP,
    ...optional('publicIPv6', canonicalIpv6(spec.publicIPv6)),
    ...optional('nodeName', spec.node),
  });
}

function canonicalIpv6(text: string | undefined): string | undefined {
  return text === undefined ? undefined : (Ipv6.parse(text)?.toString() ?? text);
}

/** Whether a key's current holder is the host a Subnet spec names (every given field matches). */
export function holderMatches(value: LeaseValue, spec: SubnetSpec): boolean {
  if (spec.node === undefined && spec.publicIP === undefined && spec.publicIPv6 === undefined) return false;
  return (
    (spec.node === undefined || value.nodeName === spec.node) &&
    (spec.publicIP === undefined || value.publicIP === spec.publicIP) &&
    (spec.publicIPv6 === undefined || value.publicIPv6 === canonicalIpv6(spec.publicIPv6))
  );
}

/** The config bytes and meta fields a Network resource becomes. */
export function networkRecordsOf(spec: NetworkSpec): { config: string; leaseTTL?: string } {
  return { config: encodeFlannelConfig(spec), ...optional('leaseTTL', spec.leaseTTL) };
}

function metadata(name: string, kv: KV | undefined, meta: Partial<NetworkMeta> | undefined): ObjectMeta {
  const out: ObjectMeta = { name };
  if (meta?.uid) out.uid = meta.uid;
  if (kv) out.resourceVersion = String(kv.modRevision);
  out.generation = meta?.generation ?? 1;
  if (meta?.creationTimestamp) out.creationTimestamp = meta.creationTimestamp;
  if (meta?.labels && Object.keys(meta.labels).length) out.labels = meta.labels;
  if (meta?.annotations && Object.keys(meta.annotations).length) out.annotations = meta.annotations;
  return out;
}

export interface NetworkView {
  resource: NetworkResource;
  /** The resolved config, when the stored one follows Flannel's rules. */
  config?: NetworkConfig;
  /** Why the stored config cannot be used, when it cannot. */
  problem?: string;
}

/** A Network from its config key (written by weft, flanneld's operator or etcdctl) and meta. */
export function networkFromStore(
  name: string,
  configKv: KV,
  meta: NetworkMeta | undefined,
  subnets: SubnetRecord[],
): NetworkView {
  let spec: NetworkSpec;
  let problem: string | undefined;
  try {
    spec = decodeFlannelConfig(configKv.value);
  } catch (err) {
    spec = { cidr: '', backend: { type: '' } };
    problem = (err as Error).message;
  }
  if (meta?.leaseTTL) spec.leaseTTL = meta.leaseTTL;
  spec = orderedSpec(spec);
  const resource: NetworkResource = { apiVersion: API_VERSION, kind: 'Network', metadata: metadata(name, configKv, meta), spec };
  if (problem) return { resource, problem };
  const resolved = resolveNetwork(name, spec);
  if (!resolved.config) {
    return { resource, problem: resolved.problems.map((p) => `${p.field}: ${p.message}`).join('; ') };
  }
  resource.status = networkStatus(resolved.config, subnets);
  return { resource, config: resolved.config };
}

/** leases counts every subnet in use (leased or reserved); reservations is the lease-less part. */
/** The field order users write (and the CRD lists), so `get -o yaml` reads naturally. */
function orderedSpec(spec: NetworkSpec): NetworkSpec {
  const backend = pickFields(spec.backend, BACKEND_FIELDS) as BackendSpec;
  return pickFields({ ...spec, backend }, NETWORK_SPEC_FIELDS) as NetworkSpec;
}

export function networkStatus(config: NetworkConfig, subnets: SubnetRecord[]): NetworkStatus {
  let leases = 0;
  let reservations = 0;
  for (const s of subnets) {
    if (!s.subnets || !keyFits(config, s.subnets)) continue;
    leases++;
    if (s.reserved) reservations++;
  }
  const capacity = config.ipv4 ? ipv4Capacity(config.ipv4) : undefined;
  const capacity6 = config.ipv6 ? ipv6Capacity(config.ipv6) : undefined;
  return {
    ...optional('capacity', capacity),
    leases,
    reservations,
    ...optional('free', capacity === undefined ? undefined : Math.max(0, capacity - leases)),
    ...optional('ipv6Capacity', capacity6 === undefined ? undefined : capped(capacity6)),
    ...optional('ipv6Free', capacity6 === undefined ? undefined : capped(capacity6 > BigInt(leases) ? capacity6 - BigInt(leases) : 0n)),
  };
}

/** A count as a JSON-safe number; IPv6 ranges can exceed 2^53. */
function capped(n: bigint): number {
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

/**
 * A Subnet from its meta (a weft reservation) and/or its key. A lease-less key with no meta
 * is a reservation made outside weft: it shows under its key's name with the spec its
 * value implies.
 */
export function subnetFromStore(
  name: string,
  meta: { kv: KV; meta: SubnetMeta } | undefined,
  record: SubnetRecord | undefined,
): SubnetResource {
  const value = record?.lease.ok ? record.lease.value : undefined;
  let spec: SubnetSpec;
  if (meta) {
    spec = pickFields(meta.meta, SUBNET_SPEC_FIELDS) as SubnetSpec;
  } else {
    const subnets = record?.subnets;
    const ipv6Only = subnets?.ipv6 !== undefined && subnets.ipv4 === undefined;
    spec = {
      network: record?.network ?? '',
      ...(ipv6Only ? {} : { cidr: record?.cidr?.toString() ?? '' }),
      ...optional('ipv6Cidr', subnets?.ipv6?.toString()),
      ...optional('node', value?.nodeName),
      ...optional('publicIP', value && !isPlaceholderPublicIP(value.publicIP) ? value.publicIP : undefined),
      ...optional('publicIPv6', value?.publicIPv6 ?? undefined),
    };
  }
  const rvKv = record?.kv ?? meta?.kv;
  const resource: SubnetResource = {
    apiVersion: API_VERSION,
    kind: 'Subnet',
    metadata: metadata(name, rvKv, meta?.meta),
    spec,
  };
  if (value?.backendType) {
    resource.status = {
      ...optional('adoptedBy', value.nodeName),
      ...optional('publicIP', hidePlaceholder(record, value.publicIP)),
      ...optional('publicIPv6', value.publicIPv6 ?? undefined),
      ...optional('vtepMAC', value.backendData?.VtepMAC),
      ...optional('ipv6VtepMAC', value.backendV6Data?.VtepMAC),
    };
  }
  return resource;
}

/** The PublicIP of a value, unless it is the 0.0.0.0 placeholder of an IPv6-only key. */
function hidePlaceholder(record: SubnetRecord | undefined, publicIP: string): string | undefined {
  if (publicIP === RESERVATION_PUBLIC_IP) return undefined;
  return publicIP === NO_PUBLIC_IP && record?.subnets?.ipv6 && !record.subnets.ipv4 ? undefined : publicIP;
}

/** The resource name of a subnets key: the key itself, mapped when it has an IPv6 half. */
export function resourceNameOf(record: SubnetRecord): string {
  return record.subnets ? leaseResourceName(record.subnets) : record.name;
}

/** A Lease from a subnets key; ttlSeconds is what etcd says is left on its lease. */
export function leaseFromStore(
  record: SubnetRecord,
  ttlSeconds: number | undefined,
  now: number,
  creationTimestamp?: string,
): LeaseResource {
  const value = record.lease.ok ? record.lease.value : undefined;
  const metadata: ObjectMeta = { name: resourceNameOf(record), resourceVersion: String(record.kv.modRevision) };
  if (creationTimestamp) metadata.creationTimestamp = creationTimestamp;
  if (!record.lease.ok) metadata.annotations = { 'weft.io/invalid-value': record.lease.error };
  const backend: LeaseResource['spec']['backend'] = { type: value?.backendType ?? '' };
  if (value?.backendData) {
    backend.vni = value.backendData.VNI;
    backend.vtepMAC = value.backendData.VtepMAC;
  }
  if (value?.backendV6Data) {
    backend.vni ??= value.backendV6Data.VNI;
    backend.ipv6VtepMAC = value.backendV6Data.VtepMAC;
  }
  const ipv6Only = record.subnets?.ipv6 !== undefined && record.subnets.ipv4 === undefined;
  return {
    apiVersion: API_VERSION,
    kind: 'Lease',
    metadata,
    spec: {
      network: record.network,
      ...(ipv6Only ? {} : { subnet: record.cidr?.toString() ?? '' }),
      ...optional('ipv6Subnet', record.subnets?.ipv6?.toString()),
      ...optional('node', value?.nodeName),
      ...(value ? optional('publicIP', hidePlaceholder(record, value.publicIP)) : { publicIP: '' }),
      ...optional('publicIPv6', value?.publicIPv6 ?? undefined),
      backend,
      ...(record.reserved
        ? { reserved: true }
        : optional('expiry', ttlSeconds === undefined ? undefined : new Date(now + ttlSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'))),
    },
  };
}

/**
 * A Node from its status record. An unreadable record keeps its key's names and says why in
 * the weft.io/invalid-value annotation, as an unreadable lease does.
 */
export function nodeFromStore(record: NodeStatusRecord, leaseFound: boolean | undefined): NodeResource {
  const metadata: ObjectMeta = { name: record.name, resourceVersion: String(record.kv.modRevision) };
  if (!record.status.ok) {
    metadata.annotations = { 'weft.io/invalid-value': record.status.error };
    return { apiVersion: API_VERSION, kind: 'Node', metadata, status: { network: record.network ?? '' } };
  }
  const s = record.status.value;
  // Second precision, as the other kinds' timestamps (the status keeps the exact time).
  metadata.creationTimestamp = s.startedAt.replace(/\.\d+Z$/, 'Z');
  return {
    apiVersion: API_VERSION,
    kind: 'Node',
    metadata,
    status: pickFields({ ...s, ...optional('leaseFound', s.lease !== undefined ? leaseFound : undefined), peers: { ...s.peers } }, NODE_VIEW_FIELDS) as NodeResourceStatus,
  };
}
