// The shapes of what weft keeps in etcd, once read: a key-value with its revisions, and
// each kind of record decoded (but trusted no further than decoding checked). Plain data,
// shared by the store that reads them and every layer that plans or reports on them.
import type { Cidr } from '../alloc/cidr.js';
import type { Decoded, LeaseKey, LeaseValue } from './lease.js';
import type { NodeStatus } from './node-status.js';
import type { NetworkSpec } from './types.js';

export interface KV {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  version: number;
  /** etcd lease id as a decimal string; "0" when the key has none. */
  leaseId: string;
}

/** One key under <network>/subnets/, decoded but not trusted beyond what decoding checked. */
export interface SubnetRecord {
  network: string;
  /** The key's last segment, e.g. "10.5.3.0-24" (Flannel's key; see leaseResourceName). */
  name: string;
  /** The subnets the key names; undefined when the key does not parse as a lease key. */
  subnets: LeaseKey | undefined;
  /** The IPv4 subnet (subnets.ipv4): undefined for IPv6-only keys and keys that do not parse. */
  cidr: Cidr | undefined;
  kv: KV;
  lease: Decoded<LeaseValue>;
  /** A reservation: a key with no etcd lease attached. */
  reserved: boolean;
}

/** One key under <prefix>/_weft/nodes/, decoded and checked against its own key. */
export interface NodeStatusRecord {
  /** From the key (the record may disagree, which makes it invalid). */
  network: string | undefined;
  name: string;
  kv: KV;
  status: Decoded<NodeStatus>;
}

export interface NetworkRecord {
  name: string;
  kv: KV;
  spec: Decoded<NetworkSpec>;
  meta: NetworkMeta | undefined;
}

/** weft's own data about a network that flanneld's config has no room for. */
export interface NetworkMeta {
  uid: string;
  creationTimestamp: string;
  generation: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  leaseTTL?: string;
}
