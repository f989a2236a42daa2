// What `weft get` shows, read from a snapshot: Networks, Subnets (reservations) and the
// agents' node status records matched to the leases they hold.
import { networkFromStore, nodeFromStore, resourceNameOf, subnetFromStore, type NetworkView } from '../api/convert.js';
import { networkSafetyProblems } from '../api/network-safety.js';
import type { NodeStatus } from '../api/node-status.js';
import type { NodeStatusRecord, SubnetRecord } from '../api/records.js';
import type { NodeResource, SubnetResource } from '../api/types.js';
import type { Layout } from '../store/layout.js';
import { findSubnetRecord, sortNetworks, subnetRecordsByKey, type Snapshot } from './snapshot.js';

export function networkViews(snap: Snapshot): NetworkView[] {
  return sortNetworks([...snap.configs.keys()]).map((name) => {
    const view = networkFromStore(name, snap.configs.get(name)!, snap.networkMetas.get(name)?.meta, snap.subnets.get(name) ?? []);
    // A config flanneld would run with but weft's agents refuse (written by hand or by flanneld's operator).
    const unsafe = view.config ? networkSafetyProblems(view.config) : [];
    return unsafe.length ? { ...view, problem: `agents refuse it: ${unsafe.map((p) => `${p.field}: ${p.message}`).join('; ')}` } : view;
  });
}

export function subnetViews(snap: Snapshot, layout: Layout): SubnetResource[] {
  const out: SubnetResource[] = [];
  const claimed = new Set<string>();
  for (const [name, m] of [...snap.subnetMetas].sort(([a], [b]) => a.localeCompare(b))) {
    if (!m.meta) continue;
    const record = findSubnetRecord(snap, layout, m.meta);
    if (record) claimed.add(record.kv.key);
    out.push(subnetFromStore(name, { kv: m.kv, meta: m.meta }, record));
  }
  for (const net of sortNetworks([...snap.subnets.keys()])) {
    for (const r of snap.subnets.get(net)!) {
      if (r.reserved && r.subnets && !claimed.has(r.kv.key)) out.push(subnetFromStore(resourceNameOf(r), undefined, r));
    }
  }
  return out;
}

export interface NodeView {
  record: NodeStatusRecord;
  resource: NodeResource;
}

/** Whether a lease still holds a node: its key exists and names no other node. */
function holdsNode(lease: SubnetRecord | undefined, node: string): boolean {
  if (!lease) return false;
  const named = lease.lease.ok ? lease.lease.value.nodeName : undefined;
  return named === undefined || named === node;
}

/** Every status record as a Node, default network first, then by network and node name. */
export function nodeViews(snap: Snapshot, layout: Layout): NodeView[] {
  const leases = subnetRecordsByKey(snap);
  const order = sortNetworks([...new Set(snap.nodes.map((n) => n.network ?? ''))]);
  const rank = new Map(order.map((n, i) => [n, i]));
  return [...snap.nodes]
    .sort((a, b) => rank.get(a.network ?? '')! - rank.get(b.network ?? '')! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((record) => {
      const s = record.status.ok ? record.status.value : undefined;
      const found = s?.lease !== undefined ? holdsNode(leases.get(layout.subnetKey(s.network, s.lease)), s.nodeName) : undefined;
      return { record, resource: nodeFromStore(record, found) };
    });
}

/**
 * The status record of each lease's holder, by subnets key: the record that names the lease,
 * preferring the node the lease names, then the most recently published one.
 */
export function nodesByLease(snap: Snapshot, layout: Layout): Map<string, NodeStatusRecord> {
  const leases = subnetRecordsByKey(snap);
  const best = new Map<string, { node: NodeStatusRecord; holds: boolean; publishedAt: string }>();
  for (const node of snap.nodes) {
    if (!node.status.ok || node.status.value.lease === undefined) continue;
    const s: NodeStatus = node.status.value;
    const key = layout.subnetKey(s.network, s.lease!);
    const lease = leases.get(key);
    if (!lease) continue;
    const holds = holdsNode(lease, s.nodeName);
    const old = best.get(key);
    if (!old || (holds && !old.holds) || (holds === old.holds && s.publishedAt > old.publishedAt)) {
      best.set(key, { node, holds, publishedAt: s.publishedAt });
    }
  }
  return new Map([...best].map(([key, b]) => [key, b.node]));
}
