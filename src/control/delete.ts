// `weft delete`: which keys an object owns and the transaction that removes them, refused
// while a Network still has leases or reservations (unless forced).
import { keyNameOfMeta, resourceNameOf } from '../api/convert.js';
import { RefusedError } from '../api/errors.js';
import type { SubnetRecord } from '../api/records.js';
import type { Kind } from '../api/types.js';
import { compareKey, type Compare, type TxnOp } from '../store/txn.js';
import { checkResourceVersion, notFound, refOf, type Plan, type PlanContext } from './plan.js';
import { findSubnetRecord, sortNetworks, type Snapshot } from './snapshot.js';

export interface DeleteTarget {
  kind: Kind;
  name: string;
  /** Leases (and synthesized Subnets): restrict the search to one network. */
  network?: string;
  resourceVersion?: string;
}

/**
 * Finds a subnets key by its resource name, or the key itself, in every network (or one);
 * refuses ambiguity.
 */
function findKey(snap: Snapshot, name: string, network: string | undefined, what: string): SubnetRecord | undefined {
  const found: SubnetRecord[] = [];
  for (const net of sortNetworks([...snap.subnets.keys()])) {
    if (network !== undefined && net !== network) continue;
    for (const r of snap.subnets.get(net)!) if (r.name === name || resourceNameOf(r) === name) found.push(r);
  }
  if (found.length > 1) {
    throw new RefusedError(
      `${what} "${name}" exists in networks ${found.map((r) => r.network).join(', ')}; choose one with --network`,
    );
  }
  return found[0];
}

export function planDelete(snap: Snapshot, t: DeleteTarget, ctx: PlanContext): Plan {
  const ref = refOf(t.kind, t.name);
  const L = ctx.layout;
  if (t.kind === 'Network') {
    const config = snap.configs.get(t.name);
    const meta = snap.networkMetas.get(t.name);
    if (!config) throw notFound('Network', t.name);
    checkResourceVersion('Network', t.name, t.resourceVersion, config);
    const subnets = snap.subnets.get(t.name) ?? [];
    const metas = [...snap.subnetMetas].filter(([, m]) => m.meta?.network === t.name);
    if ((subnets.length || metas.length) && !ctx.force) {
      const leased = subnets.filter((s) => !s.reserved).length;
      const reserved = subnets.length - leased;
      throw new RefusedError(
        `${ref}: still has ${leased} lease${leased === 1 ? '' : 's'} and ${Math.max(reserved, metas.length)} reservation${Math.max(reserved, metas.length) === 1 ? '' : 's'}` +
          ` (${subnets.map((s) => s.name).join(', ') || metas.map(([n]) => `subnet/${n}`).join(', ')}); delete them first or use --force`,
      );
    }
    const compares: Compare[] = [compareKey(L.configKey(t.name), config), compareKey(L.networkMetaKey(t.name), meta?.kv)];
    compares.push(
      ctx.force
        ? { prefix: L.subnetMetaPrefix(), unchangedSince: snap.revision }
        : { prefix: L.subnetsPrefix(t.name), empty: true },
    );
    const ops: TxnOp[] = [{ delete: L.configKey(t.name) }];
    if (meta) ops.push({ delete: L.networkMetaKey(t.name) });
    if (subnets.length) ops.push({ deletePrefix: L.subnetsPrefix(t.name) });
    for (const [n] of metas) ops.push({ delete: L.subnetMetaKey(n) });
    return { ref, action: 'deleted', compares, ops };
  }
  if (t.kind === 'Subnet') {
    const meta = snap.subnetMetas.get(t.name);
    if (meta?.meta) {
      const record = findSubnetRecord(snap, L, meta.meta);
      checkResourceVersion('Subnet', t.name, t.resourceVersion, record?.kv ?? meta.kv);
      const compares: Compare[] = [compareKey(L.subnetMetaKey(t.name), meta.kv)];
      const ops: TxnOp[] = [{ delete: L.subnetMetaKey(t.name) }];
      if (record) {
        compares.push(compareKey(record.kv.key, record.kv));
        // A key that now carries an etcd lease belongs to a live agent, not to this reservation.
        if (record.reserved) ops.push({ delete: record.kv.key });
      }
      return { ref, action: 'deleted', compares, ops };
    }
    const claimed = new Set([...snap.subnetMetas.values()].filter((m) => m.meta).map((m) => L.subnetKey(m.meta!.network, keyNameOfMeta(m.meta!))));
    const record = findKey(snap, t.name, t.network, 'subnet');
    if (!record || !record.reserved || claimed.has(record.kv.key)) {
      if (meta) {
        return { ref, action: 'deleted', compares: [compareKey(L.subnetMetaKey(t.name), meta.kv)], ops: [{ delete: L.subnetMetaKey(t.name) }] };
      }
      throw notFound('Subnet', t.name, t.network);
    }
    checkResourceVersion('Subnet', t.name, t.resourceVersion, record.kv);
    return { ref, action: 'deleted', compares: [compareKey(record.kv.key, record.kv)], ops: [{ delete: record.kv.key }] };
  }
  const record = findKey(snap, t.name, t.network, 'lease');
  if (!record) throw notFound('Lease', t.name, t.network);
  for (const [n, m] of snap.subnetMetas) {
    if (m.meta && m.meta.network === record.network && keyNameOfMeta(m.meta) === record.name && record.reserved) {
      throw new RefusedError(`${ref}: is the reservation subnet/${n}; delete that Subnet instead (weft delete subnet ${n})`);
    }
  }
  checkResourceVersion('Lease', t.name, t.resourceVersion, record.kv);
  return { ref, action: 'deleted', compares: [compareKey(record.kv.key, record.kv)], ops: [{ delete: record.kv.key }] };
}
