// Reads of weft's state in etcd, decoded and validated. Writes live next to the code that
// owns them (store/resources.ts for the CLI, store/leases.ts for agents) and always go
// through one transaction per change.
import type { Etcd3, IKeyValue } from 'etcd3';
import type { Cidr } from '../alloc/cidr.js';
import { decodeFlannelConfig } from '../api/network.js';
import { decodeLease, parseLeaseKey, type Decoded, type LeaseKey, type LeaseValue } from '../api/lease.js';
import { decodeNodeStatus, type NodeStatus } from '../api/node-status.js';
import type { NetworkSpec } from '../api/types.js';
import { classifyEtcdError, createEtcdClient, type EtcdOptions } from './client.js';
import { DEFAULT_NETWORK, Layout } from './layout.js';
import { prefixEnd } from './range.js';

export interface KV {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
  version: number;
  /** etcd lease id as a decimal string; "0" when the key has none. */
  leaseId: string;
}

export function toKV(kv: IKeyValue): KV {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
    leaseId: String(kv.lease ?? '0'),
  };
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

export function nodeStatusRecord(layout: Layout, kv: KV): NodeStatusRecord {
  const { network, node } = layout.nodeOfStatusKey(kv.key);
  let status = decodeNodeStatus(kv.value);
  if (network === undefined) {
    status = { ok: false, error: `the key is not ${layout.nodeStatusPrefix()}NETWORK/NODE` };
  } else if (status.ok && (status.value.network !== network || status.value.nodeName !== node)) {
    status = {
      ok: false,
      error: `the record names node "${status.value.nodeName}" of network "${status.value.network}", its key node "${node}" of network "${network}"`,
    };
  }
  return { network, name: node, kv, status };
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

export class Store {
  readonly layout: Layout;

  constructor(
    readonly client: Etcd3,
    prefix: string | undefined,
    readonly endpoints: string[],
  ) {
    this.layout = new Layout(prefix);
  }

  static connect(opts: EtcdOptions & { prefix?: string }): Store {
    return new Store(createEtcdClient(opts), opts.prefix, opts.endpoints);
  }

  close(): void {
    this.client.close();
  }

  /** Runs an etcd operation, turning its failures into typed store errors. */
  async call<T>(op: () => PromiseLike<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw classifyEtcdError(err, this.endpoints);
    }
  }

  async get(key: string): Promise<KV | undefined> {
    const res = await this.call(() => this.client.get(key).exec());
    const kv = res.kvs[0];
    return kv ? toKV(kv) : undefined;
  }

  /** Every key under prefix, at the latest revision or at opts.revision (a compacted one fails). */
  async list(prefix: string, opts: { keysOnly?: boolean; revision?: number } = {}): Promise<{ kvs: KV[]; revision: number }> {
    const end = prefixEnd(prefix);
    const res = await this.call(() =>
      this.client.kv.range({
        key: Buffer.from(prefix),
        range_end: end,
        keys_only: opts.keysOnly ?? false,
        ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
      }),
    );
    return { kvs: res.kvs.map(toKV), revision: Number(res.header.revision) };
  }

  /** Names of every network with a config key, "default" first. */
  async networkNames(): Promise<string[]> {
    const prefix = this.layout.prefix;
    const res = await this.call(() => this.client.getAll().prefix(prefix + '/').keys());
    const names = new Set<string>();
    for (const key of res) {
      const name = this.layout.networkOfConfigKey(key);
      if (name) names.add(name);
    }
    return [...names].sort((a, b) => (a === DEFAULT_NETWORK ? -1 : b === DEFAULT_NETWORK ? 1 : a.localeCompare(b)));
  }

  async readNetwork(name: string): Promise<NetworkRecord | undefined> {
    const [kv, metaKv] = await Promise.all([
      this.get(this.layout.configKey(name)),
      this.get(this.layout.networkMetaKey(name)),
    ]);
    if (!kv) return undefined;
    let spec: Decoded<NetworkSpec>;
    try {
      spec = { ok: true, value: decodeFlannelConfig(kv.value) };
    } catch (err) {
      spec = { ok: false, error: (err as Error).message };
    }
    const meta = metaKv ? parseMeta<NetworkMeta>(metaKv.value) : undefined;
    if (spec.ok && meta?.leaseTTL) spec.value.leaseTTL = meta.leaseTTL;
    return { name, kv, spec, meta };
  }

  async listSubnets(network: string): Promise<{ records: SubnetRecord[]; revision: number }> {
    const prefix = this.layout.subnetsPrefix(network);
    const { kvs, revision } = await this.list(prefix);
    return { records: kvs.map((kv) => subnetRecord(network, prefix, kv)), revision };
  }

  /** Seconds left on an etcd lease, or undefined when it is gone. */
  async leaseRemainingSeconds(leaseId: string): Promise<number | undefined> {
    if (leaseId === '0') return undefined;
    const res = await this.call(() =>
      this.client.leaseClient.leaseTimeToLive({ ID: leaseId, keys: false }),
    );
    const ttl = Number(res.TTL);
    return ttl >= 0 ? ttl : undefined;
  }
}

export function subnetRecord(network: string, prefix: string, kv: KV): SubnetRecord {
  const name = kv.key.slice(prefix.length);
  const subnets = name.includes('/') ? undefined : parseLeaseKey(name);
  return {
    network,
    name,
    subnets,
    cidr: subnets?.ipv4,
    kv,
    lease: decodeLease(kv.value),
    reserved: kv.leaseId === '0',
  };
}

function parseMeta<T>(text: string): T | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as T) : undefined;
  } catch {
    return undefined;
  }
}
