// The control plane's view of the prefix: every key at one revision (one range read),
// indexed by what it means. Planning and `weft get` work on this, never on etcd directly.
import { parseNetworkMeta, parseSubnetMeta, keyNameOfMeta, type SubnetMeta } from '../api/convert.js';
import { networkNameProblem } from '../api/names.js';
import type { KV, NetworkMeta, NodeStatusRecord, SubnetRecord } from '../api/records.js';
import { DEFAULT_NETWORK, type Layout } from '../store/layout.js';
import { nodeStatusRecord, subnetRecord } from '../store/store.js';

/** Every key under the prefix at one revision, indexed by what it means. */
export interface Snapshot {
  revision: number;
  kvs: Map<string, KV>;
  configs: Map<string, KV>;
  networkMetas: Map<string, { kv: KV; meta: NetworkMeta | undefined }>;
  /** Subnets keys per network name (also for networks whose config is gone). */
  subnets: Map<string, SubnetRecord[]>;
  subnetMetas: Map<string, { kv: KV; meta: SubnetMeta | undefined }>;
  /** Agents' node status records, in key order. */
  nodes: NodeStatusRecord[];
}

export function indexSnapshot(layout: Layout, revision: number, kvs: Map<string, KV>): Snapshot {
  const snap: Snapshot = {
    revision,
    kvs,
    configs: new Map(),
    networkMetas: new Map(),
    subnets: new Map(),
    subnetMetas: new Map(),
    nodes: [],
  };
  const prefix = layout.prefix;
  const netMeta = `${layout.metaRoot}networks/`;
  const subMeta = layout.subnetMetaPrefix();
  const nodes = layout.nodeStatusPrefix();
  for (const kv of [...kvs.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))) {
    const key = kv.key;
    if (key.startsWith(netMeta)) {
      const name = key.slice(netMeta.length);
      snap.networkMetas.set(name, { kv, meta: parseNetworkMeta(kv.value) });
      continue;
    }
    if (key.startsWith(nodes)) {
      snap.nodes.push(nodeStatusRecord(layout, kv));
      continue;
    }
    if (key.startsWith(subMeta)) {
      const name = key.slice(subMeta.length);
      snap.subnetMetas.set(name, { kv, meta: parseSubnetMeta(kv.value) });
      continue;
    }
    const network = layout.networkOfConfigKey(key);
    if (network) {
      snap.configs.set(network, kv);
      continue;
    }
    const sub = subnetsNetworkOf(prefix, key);
    if (sub) {
      const list = snap.subnets.get(sub) ?? [];
      list.push(subnetRecord(sub, layout.subnetsPrefix(sub), kv));
      snap.subnets.set(sub, list);
    }
  }
  return snap;
}

function subnetsNetworkOf(prefix: string, key: string): string | undefined {
  if (key.startsWith(`${prefix}/subnets/`)) return DEFAULT_NETWORK;
  const rest = key.startsWith(prefix + '/') ? key.slice(prefix.length + 1) : undefined;
  const m = rest ? /^([^/]+)\/subnets\//.exec(rest) : null;
  return m && !networkNameProblem(m[1]!) && m[1] !== DEFAULT_NETWORK ? m[1] : undefined;
}

export function sortNetworks(names: string[]): string[] {
  return names.sort((a, b) => (a === DEFAULT_NETWORK ? -1 : b === DEFAULT_NETWORK ? 1 : a.localeCompare(b)));
}

export function findSubnetRecord(snap: Snapshot, layout: Layout, meta: SubnetMeta): SubnetRecord | undefined {
  const key = layout.subnetKey(meta.network, keyNameOfMeta(meta));
  return (snap.subnets.get(meta.network) ?? []).find((r) => r.kv.key === key);
}

/** Every subnets key of every network, by key. */
export function subnetRecordsByKey(snap: Snapshot): Map<string, SubnetRecord> {
  const out = new Map<string, SubnetRecord>();
  for (const list of snap.subnets.values()) for (const r of list) out.set(r.kv.key, r);
  return out;
}
