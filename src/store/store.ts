// Reads of weft's state in etcd, decoded and validated, and the one way to write it: a
// transaction (Store.commit for the control plane's plans, store/leases.ts for agents).
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Cidr } from '../alloc/cidr.js';
import { parseNetworkMeta } from '../api/convert.js';
import { decodeFlannelConfig } from '../api/network.js';
import { decodeLease, parseLeaseKey, type Decoded, type LeaseKey, type LeaseValue } from '../api/lease.js';
import { StoreUnavailableError } from './errors.js';
import { decodeNodeStatus, type NodeStatus } from '../api/node-status.js';
import type { NetworkSpec } from '../api/types.js';
import { classifyEtcdError, createEtcdClient, type EtcdOptions } from './client.js';
import type { KV, NetworkMeta, NetworkRecord, NodeStatusRecord, SubnetRecord } from '../api/records.js';
import { DEFAULT_NETWORK, Layout } from './layout.js';
import { prefixEnd } from './range.js';
import { toEtcdCompare, toEtcdOp, type Compare, type TxnOp } from './txn.js';

export type { KV, NetworkMeta, NetworkRecord, NodeStatusRecord, SubnetRecord };

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

/** What a prefix watch reports: each change as a decoded KV, and the moment it broke. */
export interface PrefixWatchListener {
  put(kv: KV): void;
  delete(kv: KV): void;
  /** The watch is dead (error, disconnect, compaction): list again and watch anew. */
  broken(err: unknown): void;
}

/** A running prefix watch; cancel() stops it (idempotent). */
export interface PrefixWatch {
  cancel(): Promise<void>;
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
    const meta = metaKv ? parseNetworkMeta(metaKv.value) : undefined;
    if (spec.ok && meta?.leaseTTL) spec.value.leaseTTL = meta.leaseTTL;
    return { name, kv, spec, meta };
  }

  /** How many keys a network's subnets hold: etcd counts them and sends no values (a cheap, early hint of the listing's size). */
  async countSubnets(network: string): Promise<number> {
    const prefix = this.layout.subnetsPrefix(network);
    const res = await this.call(() => this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), count_only: true }));
    return Number(res.count);
  }

  async listSubnets(network: string): Promise<{ records: SubnetRecord[]; revision: number }> {
    const prefix = this.layout.subnetsPrefix(network);
    const { kvs, revision } = await this.list(prefix);
    return { records: kvs.map((kv) => subnetRecord(network, prefix, kv)), revision };
  }

  /**
   * Commits one transaction: every compare must hold, then every op applies, atomically.
   * False when a compare failed (which etcd3's retries can also report for a commit that
   * landed: the caller re-reads to tell the two apart).
   */
  async commit(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<boolean> {
    const res = await this.call(() =>
      this.client.kv.txn({ compare: compares.map(toEtcdCompare), success: ops.map(toEtcdOp), failure: [] }),
    );
    return res.succeeded;
  }

  /** Seconds left on, and granted to, each etcd lease (undefined when gone); a few calls at a time. */
  async leaseTimes(ids: readonly string[]): Promise<Map<string, { ttl: number; granted: number } | undefined>> {
    const unique = [...new Set(ids)];
    const out = new Map<string, { ttl: number; granted: number } | undefined>();
    for (let i = 0; i < unique.length; i += 16) {
      const batch = unique.slice(i, i + 16);
      const ttls = await Promise.all(
        batch.map((id) => this.call(() => this.client.leaseClient.leaseTimeToLive({ ID: id, keys: false }))),
      );
      batch.forEach((id, j) => {
        const ttl = Number(ttls[j]!.TTL);
        out.set(id, ttl >= 0 ? { ttl, granted: Number(ttls[j]!.grantedTTL) } : undefined);
      });
    }
    return out;
  }

  /**
   * Watches every key under `prefix` from `fromRevision` on. Creating a watch has no deadline
   * of its own (on a half-dead connection it can wait forever), so it is bounded by
   * `createTimeoutMs`. Listener calls are guarded: etcd3 re-throws a listener's exception
   * later and crashes the process, so one is reported to `broken` instead.
   */
  async watchPrefix(prefix: string, fromRevision: number, listener: PrefixWatchListener, opts: { createTimeoutMs?: number } = {}): Promise<PrefixWatch> {
    const creating = this.client.watch().prefix(prefix).startRevision(String(fromRevision)).create();
    const timeout = opts.createTimeoutMs ?? 3000;
    let timer: NodeJS.Timeout | undefined;
    let w: Watcher;
    try {
      w = await Promise.race([
        creating,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new StoreUnavailableError(`creating the watch timed out after ${timeout} ms`, this.endpoints)), timeout);
        }),
      ]);
    } catch (err) {
      void creating.then((late) => late.cancel()).catch(() => {});
      throw classifyEtcdError(err, this.endpoints);
    } finally {
      clearTimeout(timer);
    }
    let live = true;
    const guard = (fn: () => void) => {
      if (!live) return;
      try {
        fn();
      } catch (err) {
        live = false;
        listener.broken(err);
      }
    };
    // Listeners attached right after create(): a watcher without an error listener crashes
    // the process when it is cancelled.
    w.on('put', (kv) => guard(() => listener.put(toKV(kv))));
    w.on('delete', (kv) => guard(() => listener.delete(toKV(kv))));
    const broken = (err: unknown) => {
      if (!live) return;
      live = false;
      listener.broken(err);
    };
    w.on('error', broken);
    w.on('disconnected', broken);
    return {
      cancel: async () => {
        live = false;
        await w.cancel().catch(() => {});
      },
    };
  }

  /**
   * Whether etcd answers, within `timeoutMs`: a member-local (serializable) read of `key`,
   * the cheapest read etcd serves. Only the connection is in question, not consensus.
   */
  async ping(key: string, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.call(() => this.client.get(key).serializable(true).exec()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new StoreUnavailableError(`etcd did not answer within ${timeoutMs} ms`, this.endpoints)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
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
