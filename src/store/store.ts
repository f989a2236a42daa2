// Reads of weft's state in etcd, decoded and validated, and the one way to write it: a
// transaction (Store.commit for the control plane's plans, store/leases.ts for agents).
import type { Etcd3, IKeyValue } from 'etcd3';
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
import { openWatch, type WatchTarget } from './watch-stream.js';
import { grpcTargetOf, GrpcStatusError } from './grpc-http2.js';
import { DirectKv } from './direct-kv.js';
import type { RangeRequest } from './kv-codec.js';
import type { RangeResult } from './range-decode.js';

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
  private etcd: Etcd3 | undefined;

  constructor(
    /** The etcd3 client, or how to make it on first use (Store.connect: a process that reads directly may never need it). */
    client: Etcd3 | (() => Etcd3),
    prefix: string | undefined,
    readonly endpoints: string[],
    /** How the lease watch connects (watch-stream.ts); by default the endpoints, without TLS or a user. */
    private readonly watchTarget: WatchTarget = { endpoints },
    /** Calls over weft's own HTTP/2 client first (direct-kv.ts), etcd3 when one fails. */
    private direct?: DirectKv,
  ) {
    this.layout = new Layout(prefix);
    if (typeof client === 'function') this.makeClient = client;
    else this.etcd = client;
  }
  private makeClient: (() => Etcd3) | undefined;

  /**
   * @param opts.direct reads, transactions and lease grants go over weft's own HTTP/2 client
   *   (direct-kv.ts) while it answers; etcd3, loaded only when something needs it, does the
   *   rest (the agent: its start needs nothing else).
   */
  static connect(opts: EtcdOptions & { prefix?: string; direct?: boolean }): Store {
    const target = grpcTargetOf(opts);
    const direct = opts.direct ? new DirectKv(target, opts.callTimeoutMs ?? 5000) : undefined;
    return new Store(() => createEtcdClient(opts), opts.prefix, opts.endpoints, target, direct);
  }

  /** etcd3's client, made on first use. */
  get client(): Etcd3 {
    if (!this.etcd) {
      this.etcd = this.makeClient!();
      this.makeClient = undefined;
    }
    return this.etcd;
  }

  close(): void {
    this.direct?.close();
    this.etcd?.close();
    this.makeClient = undefined;
  }

  /** Runs an etcd operation, turning its failures into typed store errors. */
  async call<T>(op: () => PromiseLike<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw classifyEtcdError(err, this.endpoints);
    }
  }

  /**
   * One call, directly while the direct client answers (direct-kv.ts), else through etcd3,
   * whose retries and typed errors every caller relies on. A failed connection hands every
   * later call to etcd3 too; an error status from etcd (a compacted revision, a key the role
   * does not cover) leaves the direct client in place, and etcd3 asks again and reports it.
   */
  private async directFirst<T>(direct: (d: DirectKv) => Promise<T>, viaEtcd3: () => PromiseLike<T>): Promise<T> {
    const d = this.direct;
    if (d) {
      try {
        return await direct(d);
      } catch (err) {
        if (!(err instanceof GrpcStatusError) && this.direct === d) {
          this.direct = undefined;
          d.close();
        }
      }
    }
    return this.call(viaEtcd3);
  }

  private range(req: RangeRequest): Promise<RangeResult> {
    return this.directFirst(
      (d) => d.range(req),
      async () => {
        const res = await this.client.kv.range({
          key: req.key,
          ...(req.rangeEnd ? { range_end: req.rangeEnd } : {}),
          ...(req.revision ? { revision: req.revision } : {}),
          ...(req.keysOnly ? { keys_only: true } : {}),
          ...(req.countOnly ? { count_only: true } : {}),
          ...(req.serializable ? { serializable: true } : {}),
        });
        return { kvs: res.kvs.map(toKV), revision: Number(res.header.revision), count: Number(res.count) };
      },
    );
  }

  async get(key: string): Promise<KV | undefined> {
    return (await this.range({ key: Buffer.from(key) })).kvs[0];
  }

  /** Every key under prefix, at the latest revision or at opts.revision (a compacted one fails). */
  async list(prefix: string, opts: { keysOnly?: boolean; revision?: number } = {}): Promise<{ kvs: KV[]; revision: number }> {
    const res = await this.range({
      key: Buffer.from(prefix),
      rangeEnd: prefixEnd(prefix),
      ...(opts.keysOnly ? { keysOnly: true } : {}),
      ...(opts.revision !== undefined ? { revision: opts.revision } : {}),
    });
    return { kvs: res.kvs, revision: res.revision };
  }

  /** Names of every network with a config key, "default" first. */
  async networkNames(): Promise<string[]> {
    const prefix = this.layout.prefix;
    const res = await this.range({ key: Buffer.from(prefix + '/'), rangeEnd: prefixEnd(prefix + '/'), keysOnly: true });
    const names = new Set<string>();
    for (const kv of res.kvs) {
      const name = this.layout.networkOfConfigKey(kv.key);
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
    return (await this.range({ key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), countOnly: true })).count;
  }

  async listSubnets(network: string): Promise<{ records: SubnetRecord[]; revision: number }> {
    const prefix = this.layout.subnetsPrefix(network);
    const { kvs, revision } = await this.list(prefix);
    return { records: kvs.map((kv) => subnetRecord(network, prefix, kv)), revision };
  }

  /**
   * Commits one transaction: every compare must hold, then every op applies, atomically.
   * False when a compare failed (which a repeated call can also report for a commit that
   * landed, etcd3's retries as much as directFirst(): the caller re-reads to tell the two apart).
   */
  async commit(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<boolean> {
    return (await this.txn(compares, ops)).succeeded;
  }

  /** As commit, with the revision the transaction was at (the new one when it succeeded). */
  async txn(compares: readonly Compare[], ops: readonly TxnOp[]): Promise<{ succeeded: boolean; revision: number }> {
    const compare = compares.map(toEtcdCompare);
    const success = ops.map(toEtcdOp);
    return this.directFirst(
      (d) => d.txn(compare, success),
      async () => {
        const res = await this.client.kv.txn({ compare, success, failure: [] });
        return { succeeded: res.succeeded, revision: Number(res.header.revision) };
      },
    );
  }

  /** A new etcd lease of `ttlSeconds`: its ID and the TTL etcd gave it. */
  async grantLease(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    return this.directFirst(
      (d) => d.leaseGrant(ttlSeconds),
      async () => {
        const res = await this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 });
        return { id: String(res.ID), ttl: Number(res.TTL) };
      },
    );
  }

  /** Revokes an etcd lease (its keys go with it). */
  async revokeLease(id: string): Promise<void> {
    await this.directFirst<unknown>(
      (d) => d.leaseRevoke(id),
      () => this.client.leaseClient.leaseRevoke({ ID: id }),
    );
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
   * Watches every key under `prefix` from `fromRevision` on, through weft's own watch stream
   * (watch-stream.ts, not etcd3's). Creating a watch has no deadline of its own (on a
   * half-dead connection it can wait forever), so it is bounded by `createTimeoutMs`, across
   * the members. Listener calls are guarded: an exception is reported to `broken` instead.
   */
  async watchPrefix(prefix: string, fromRevision: number, listener: PrefixWatchListener, opts: { createTimeoutMs?: number } = {}): Promise<PrefixWatch> {
    let live = true;
    let member = this.watchMember;
    const broken = (err: unknown) => {
      if (!live) return;
      live = false;
      // The next watch starts at another member: this one may be the reason.
      this.watchMember = (member + 1) % this.watchTarget.endpoints.length;
      listener.broken(err);
    };
    const opened = await openWatch(
      this.watchTarget,
      member,
      Buffer.from(prefix),
      prefixEnd(prefix),
      fromRevision,
      {
        events: (events) => {
          if (!live) return;
          try {
            for (const e of events) {
              if (!live || e.kv === null) continue;
              if (e.type === 'Put') listener.put(toKV(e.kv));
              else if (e.type === 'Delete') listener.delete(toKV(e.kv));
            }
          } catch (err) {
            broken(err);
          }
        },
        broken,
      },
      opts.createTimeoutMs ?? 3000,
    ).catch((err: unknown) => {
      this.watchMember = (member + 1) % this.watchTarget.endpoints.length;
      throw err;
    });
    member = opened.member;
    this.watchMember = member;
    return {
      cancel: async () => {
        live = false;
        opened.watch.cancel();
      },
    };
  }
  /** The member the next watch tries first. */
  private watchMember = 0;

  /**
   * Whether etcd answers, within `timeoutMs`: a member-local (serializable) read of `key`,
   * the cheapest read etcd serves. Only the connection is in question, not consensus.
   */
  async ping(key: string, timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.range({ key: Buffer.from(key), serializable: true }),
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
