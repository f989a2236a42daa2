// What a CLI change means, decided without I/O: a snapshot of every key under the prefix
// (one range, one revision), indexed by meaning; each apply or delete planned against it as
// compares + ops (or typed errors); and read views for `weft get`. The shell that reads the
// snapshot and commits the plans is resources.ts.
import { Cidr, Cidr6, Ipv6 } from '../alloc/cidr.js';
import {
  encodeNetworkMeta,
  encodeSubnetMeta,
  holderMatches,
  keyNameOfMeta,
  networkFromStore,
  networkRecordsOf,
  nodeFromStore,
  parseNetworkMeta,
  parseSubnetMeta,
  reservationValue,
  resourceNameOf,
  subnetFromStore,
  subnetsOfMeta,
  type NetworkView,
  type SubnetMeta,
} from '../api/convert.js';
import { ConflictError, NotFoundError, RefusedError } from '../api/errors.js';
import { describeLeaseKey, formatLeaseKey, type LeaseKey } from '../api/lease.js';
import { describeRanges, keyFits, resolveNetwork, subnet6Fits, subnetFits, type NetworkConfig } from '../api/network.js';
import { hostNetworkOverlaps, networkCollisions, networkSafetyProblems, type HostNetwork, type OtherNetwork } from '../api/network-safety.js';
import type { NodeStatus } from '../api/node-status.js';
import type { Kind, NetworkResource, NodeResource, SubnetResource } from '../api/types.js';
import { DEFAULT_NETWORK, networkNameProblem, type Layout } from './layout.js';
import { nodeStatusRecord, subnetRecord, type KV, type NetworkMeta, type NodeStatusRecord, type SubnetRecord } from './store.js';

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

// ---- transactions as data --------------------------------------------------------------

export type Compare =
  | { key: string; modRevision: number }
  | { key: string; absent: true }
  /** No key under the prefix changed after this revision (new keys included). */
  | { prefix: string; unchangedSince: number }
  /** No key under the prefix at all. */
  | { prefix: string; empty: true };

export type Op = { put: string; value: string } | { delete: string } | { deletePrefix: string };

export type Action = 'created' | 'configured' | 'unchanged' | 'deleted';

export interface Plan {
  /** "network.weft.io/default" */
  ref: string;
  action: Action;
  compares: Compare[];
  ops: Op[];
}

function compareKey(key: string, kv: KV | undefined): Compare {
  return kv ? { key, modRevision: kv.modRevision } : { key, absent: true };
}

/** Applies ops to an in-memory copy, as etcd would (puts carry no etcd lease). */
export function simulate(kvs: Map<string, KV>, ops: Op[], revision: number): Map<string, KV> {
  const out = new Map(kvs);
  for (const op of ops) {
    if ('put' in op) {
      const old = out.get(op.put);
      out.set(op.put, {
        key: op.put,
        value: op.value,
        modRevision: revision,
        createRevision: old?.createRevision ?? revision,
        version: (old?.version ?? 0) + 1,
        leaseId: '0',
      });
    } else if ('delete' in op) {
      out.delete(op.delete);
    } else {
      for (const k of [...out.keys()]) if (k.startsWith(op.deletePrefix)) out.delete(k);
    }
  }
  return out;
}

// ---- planning (pure) --------------------------------------------------------------------

export interface PlanContext {
  layout: Layout;
  force: boolean;
  now: () => Date;
  uid: () => string;
  /** The networks of the applying host's interfaces: a Network overlapping one is refused. */
  hostNetworks?: readonly HostNetwork[];
}

/** Problems without a location; the caller knows the document they came from. */
export class PlanProblems extends Error {
  constructor(readonly problems: { field: string; message: string }[]) {
    super(problems.map((p) => `${p.field}: ${p.message}`).join('; '));
  }
}

export function refOf(kind: Kind | 'Node', name: string): string {
  return `${kind.toLowerCase()}.weft.io/${name}`;
}

function plural(kind: Kind): string {
  return `${kind.toLowerCase()}s.weft.io`;
}

function checkResourceVersion(kind: Kind, name: string, given: string | undefined, live: KV | undefined): void {
  if (given === undefined) return;
  if (!live) {
    throw new ConflictError(
      `${plural(kind)} "${name}": metadata.resourceVersion ${given} was given but the object does not exist; remove resourceVersion to create it`,
    );
  }
  if (String(live.modRevision) !== given) {
    throw new ConflictError(
      `${plural(kind)} "${name}": the object has been modified (resourceVersion ${given} given, live is ${live.modRevision}); get it again and re-apply your changes`,
    );
  }
}

function sameMap(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  return JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b ?? {}).sort());
}

function describeHolder(r: SubnetRecord): string {
  if (!r.lease.ok) return 'an unreadable value';
  const v = r.lease.value;
  return v.nodeName ? `node ${v.nodeName} (${v.publicIP})` : v.publicIP;
}

export function planNetworkApply(snap: Snapshot, res: NetworkResource, ctx: PlanContext): Plan {
  const name = res.metadata.name;
  const ref = refOf('Network', name);
  const configKey = ctx.layout.configKey(name);
  const metaKey = ctx.layout.networkMetaKey(name);
  const liveConfig = snap.configs.get(name);
  const liveMeta = snap.networkMetas.get(name);
  checkResourceVersion('Network', name, res.metadata.resourceVersion, liveConfig);
  const nameProblem = networkNameProblem(name);
  if (nameProblem) throw new PlanProblems([{ field: 'metadata.name', message: nameProblem }]);
  const resolved = resolveNetwork(name, res.spec);
  if (!resolved.config) throw new PlanProblems(resolved.problems);
  const config = resolved.config;
  const unsafe = [
    ...networkSafetyProblems(config),
    ...networkCollisions(name, config, otherNetworks(snap, name)),
    ...hostNetworkOverlaps(config, ctx.hostNetworks ?? []),
  ];
  if (unsafe.length > 0) throw new PlanProblems(unsafe);

  const { config: bytes, leaseTTL } = networkRecordsOf(res.spec);
  const old = liveMeta?.meta;
  const specChanged = !liveConfig || liveConfig.value !== bytes || old?.leaseTTL !== leaseTTL;
  const meta: NetworkMeta = {
    uid: old?.uid || ctx.uid(),
    creationTimestamp: old?.creationTimestamp || ctx.now().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    generation: old ? old.generation + (specChanged ? 1 : 0) : 1,
    ...(res.metadata.labels ? { labels: res.metadata.labels } : {}),
    ...(res.metadata.annotations ? { annotations: res.metadata.annotations } : {}),
    ...(leaseTTL ? { leaseTTL } : {}),
  };
  const metaBytes = encodeNetworkMeta(meta);
  if (liveConfig && !specChanged && liveMeta?.kv.value === metaBytes) {
    return { ref, action: 'unchanged', compares: [], ops: [] };
  }

  const compares: Compare[] = [compareKey(configKey, liveConfig), compareKey(metaKey, liveMeta?.kv)];
  if (liveConfig?.value !== bytes) {
    const misfits = (snap.subnets.get(name) ?? []).filter((s) => !s.subnets || !keyFits(config, s.subnets));
    if (misfits.length > 0 && !ctx.force) {
      const list = misfits.map((s) => `${s.name} (${s.reserved ? 'reserved for' : 'leased by'} ${describeHolder(s)})`);
      throw new RefusedError(
        `${ref}: the new spec leaves ${misfits.length} subnet${misfits.length === 1 ? '' : 's'} outside ${describeRanges(config)}: ` +
          `${list.join(', ')}; use --force to apply anyway (those hosts will lose their subnets)`,
      );
    }
    // The fit check above is only true while no lease appears or moves under the network.
    compares.push({ prefix: ctx.layout.subnetsPrefix(name), unchangedSince: snap.revision });
  }
  // The config is re-put even when its bytes are unchanged so that resourceVersion (its mod
  // revision) moves with every change to the object.
  return {
    ref,
    action: liveConfig ? 'configured' : 'created',
    compares,
    ops: [
      { put: configKey, value: bytes },
      { put: metaKey, value: metaBytes },
    ],
  };
}

/** The other networks in the snapshot whose stored config is usable. */
function otherNetworks(snap: Snapshot, name: string): OtherNetwork[] {
  const out: OtherNetwork[] = [];
  for (const [other, kv] of snap.configs) {
    if (other === name) continue;
    const view = networkFromStore(other, kv, snap.networkMetas.get(other)?.meta, []);
    if (view.config) out.push({ name: other, config: view.config });
  }
  return out;
}

function findSubnetRecord(snap: Snapshot, layout: Layout, meta: SubnetMeta): SubnetRecord | undefined {
  const key = layout.subnetKey(meta.network, keyNameOfMeta(meta));
  return (snap.subnets.get(meta.network) ?? []).find((r) => r.kv.key === key);
}

/** Which spec field names the family in which two keys overlap, if they do. */
function overlapField(a: LeaseKey, b: LeaseKey | undefined): 'spec.cidr' | 'spec.ipv6Cidr' | undefined {
  if (a.ipv4 && b?.ipv4?.overlaps(a.ipv4)) return 'spec.cidr';
  if (a.ipv6 && b?.ipv6?.overlaps(a.ipv6)) return 'spec.ipv6Cidr';
  return undefined;
}

/**
 * The subnets a Subnet spec reserves: one per stack of its network, each inside the stack's
 * range; and who may adopt it (node, or the public IP that identifies hosts there: IPv4 when
 * the network has IPv4, else IPv6).
 */
function reservedSubnets(spec: SubnetResource['spec'], config: NetworkConfig): LeaseKey {
  const problems: { field: string; message: string }[] = [];
  const net = `network "${spec.network}"`;
  const out: LeaseKey = {};
  if (config.ipv4) {
    const stack = config.ipv4;
    const cidr = spec.cidr === undefined ? undefined : Cidr.parse(spec.cidr, { strict: true });
    if (spec.cidr === undefined) problems.push({ field: 'spec.cidr', message: `is required: ${net} has an IPv4 range (${stack.network})` });
    else if (!cidr) problems.push({ field: 'spec.cidr', message: `"${spec.cidr}" is not a subnet address` });
    else if (!stack.network.contains(cidr)) problems.push({ field: 'spec.cidr', message: `${cidr} is outside ${net} (${stack.network})` });
    else if (cidr.prefix !== stack.subnetLen) {
      problems.push({ field: 'spec.cidr', message: `${cidr} must be a /${stack.subnetLen}, the subnetLength of ${net}` });
    } else if (!subnetFits(stack, cidr)) {
      problems.push({ field: 'spec.cidr', message: `${cidr} is outside subnetMin..subnetMax (${stack.subnetMin}..${stack.subnetMax}) of ${net}` });
    } else out.ipv4 = cidr;
  } else if (spec.cidr !== undefined) {
    problems.push({ field: 'spec.cidr', message: `${net} is IPv6-only; reserve its IPv6 subnet with spec.ipv6Cidr` });
  }
  if (config.ipv6) {
    const stack = config.ipv6;
    const cidr = spec.ipv6Cidr === undefined ? undefined : Cidr6.parse(spec.ipv6Cidr, { strict: true });
    if (spec.ipv6Cidr === undefined) problems.push({ field: 'spec.ipv6Cidr', message: `is required: ${net} has an IPv6 range (${stack.network})` });
    else if (!cidr) problems.push({ field: 'spec.ipv6Cidr', message: `"${spec.ipv6Cidr}" is not an IPv6 subnet address` });
    else if (!stack.network.contains(cidr)) problems.push({ field: 'spec.ipv6Cidr', message: `${cidr} is outside ${net} (${stack.network})` });
    else if (cidr.prefix !== stack.subnetLen) {
      problems.push({ field: 'spec.ipv6Cidr', message: `${cidr} must be a /${stack.subnetLen}, the ipv6SubnetLength of ${net}` });
    } else if (!subnet6Fits(stack, cidr)) {
      problems.push({ field: 'spec.ipv6Cidr', message: `${cidr} is outside ipv6SubnetMin..ipv6SubnetMax (${stack.subnetMin}..${stack.subnetMax}) of ${net}` });
    } else out.ipv6 = cidr;
  } else if (spec.ipv6Cidr !== undefined) {
    problems.push({ field: 'spec.ipv6Cidr', message: `${net} has no IPv6 range (spec.ipv6Cidr of the Network)` });
  }
  if (config.ipv4 && spec.publicIPv6 !== undefined) {
    problems.push({ field: 'spec.publicIPv6', message: `hosts in ${net} are matched by node or publicIP (publicIPv6 is for IPv6-only networks)` });
  }
  if (!config.ipv4 && spec.publicIP !== undefined) {
    problems.push({ field: 'spec.publicIP', message: `${net} is IPv6-only: its hosts are matched by node or publicIPv6` });
  }
  if (problems.length) throw new PlanProblems(problems);
  return out;
}

/** The config of a network in the snapshot, or a problem that names the spec.network field. */
function networkConfigOf(snap: Snapshot, network: string): NetworkConfig {
  const kv = snap.configs.get(network);
  if (!kv) {
    throw new PlanProblems([
      { field: 'spec.network', message: `network "${network}" does not exist; apply it first (Networks in the same apply come first)` },
    ]);
  }
  const view = networkFromStore(network, kv, snap.networkMetas.get(network)?.meta, []);
  if (!view.config) {
    throw new PlanProblems([{ field: 'spec.network', message: `network "${network}" has an unusable config: ${view.problem}` }]);
  }
  return view.config;
}

export function planSubnetApply(snap: Snapshot, res: SubnetResource, ctx: PlanContext): Plan {
  const name = res.metadata.name;
  const ref = refOf('Subnet', name);
  const spec = res.spec;
  const metaKey = ctx.layout.subnetMetaKey(name);
  const liveMeta = snap.subnetMetas.get(name);
  const old = liveMeta?.meta;
  const oldRecord = old ? findSubnetRecord(snap, ctx.layout, old) : undefined;
  checkResourceVersion('Subnet', name, res.metadata.resourceVersion, oldRecord?.kv ?? liveMeta?.kv);

  const config = networkConfigOf(snap, spec.network);
  const mine = reservedSubnets(spec, config);
  const what = describeLeaseKey(mine);
  const problems: { field: string; message: string }[] = [];

  const key = ctx.layout.subnetKey(spec.network, formatLeaseKey(mine));
  const claimedBy = new Map<string, string>(); // subnets key -> Subnet name
  for (const [other, m] of snap.subnetMetas) {
    if (!m.meta || other === name) continue;
    claimedBy.set(ctx.layout.subnetKey(m.meta.network, keyNameOfMeta(m.meta)), other);
    const theirs = subnetsOfMeta(m.meta);
    const field = m.meta.network === spec.network ? overlapField(mine, theirs) : undefined;
    if (field) problems.push({ field, message: `${what} overlaps subnet/${other} (${describeLeaseKey(theirs)})` });
  }
  let existing: SubnetRecord | undefined;
  for (const r of snap.subnets.get(spec.network) ?? []) {
    const field = overlapField(mine, r.subnets);
    if (!field || claimedBy.has(r.kv.key)) continue;
    const isOld = oldRecord?.kv.key === r.kv.key;
    const sameHolder = r.lease.ok && holderMatches(r.lease.value, spec);
    if (r.kv.key === key && (isOld || sameHolder)) {
      existing = r;
      continue;
    }
    if (isOld && !r.reserved) continue;
    const held = r.reserved ? 'the reservation' : 'the live lease';
    problems.push({ field, message: `${what} overlaps ${held} ${r.name} held by ${describeHolder(r)}` });
  }
  if (problems.length) throw new PlanProblems(problems);

  const cidr = mine.ipv4?.toString();
  const ipv6Cidr = mine.ipv6?.toString();
  const publicIPv6 = spec.publicIPv6 === undefined ? undefined : (Ipv6.parse(spec.publicIPv6)?.toString() ?? spec.publicIPv6);
  const specChanged =
    !old ||
    old.network !== spec.network ||
    old.cidr !== cidr ||
    old.ipv6Cidr !== ipv6Cidr ||
    old.node !== spec.node ||
    old.publicIP !== spec.publicIP ||
    old.publicIPv6 !== publicIPv6;
  const meta: SubnetMeta = {
    network: spec.network,
    ...(cidr !== undefined ? { cidr } : {}),
    ...(ipv6Cidr !== undefined ? { ipv6Cidr } : {}),
    ...(spec.node !== undefined ? { node: spec.node } : {}),
    ...(spec.publicIP !== undefined ? { publicIP: spec.publicIP } : {}),
    ...(publicIPv6 !== undefined ? { publicIPv6 } : {}),
    uid: old?.uid || ctx.uid(),
    creationTimestamp: old?.creationTimestamp || ctx.now().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    generation: old ? old.generation + (specChanged ? 1 : 0) : 1,
    ...(res.metadata.labels ? { labels: res.metadata.labels } : {}),
    ...(res.metadata.annotations ? { annotations: res.metadata.annotations } : {}),
  };
  const metaBytes = encodeSubnetMeta(meta);
  // An agent that adopted the key rewrote its value with its backend data; keep that while
  // the spec still names the same host, so peers keep their routes.
  const keep = existing && existing.lease.ok && holderMatches(existing.lease.value, spec);
  const value = keep ? existing!.kv.value : reservationValue(spec);
  const metaChanged = liveMeta?.kv.value !== metaBytes;
  const keyChanged = !existing || !existing.reserved || existing.kv.value !== value;
  if (!metaChanged && !keyChanged) return { ref, action: 'unchanged', compares: [], ops: [] };

  const compares: Compare[] = [
    compareKey(metaKey, liveMeta?.kv),
    compareKey(key, existing?.kv),
    compareKey(ctx.layout.configKey(spec.network), snap.configs.get(spec.network)),
    { prefix: ctx.layout.subnetsPrefix(spec.network), unchangedSince: snap.revision },
  ];
  const ops: Op[] = [];
  if (oldRecord && oldRecord.kv.key !== key) {
    compares.push(compareKey(oldRecord.kv.key, oldRecord.kv));
    if (oldRecord.reserved) ops.push({ delete: oldRecord.kv.key });
  }
  // Re-put on label changes too, so resourceVersion (the key's mod revision) moves.
  ops.push({ put: key, value }, { put: metaKey, value: metaBytes });
  return { ref, action: liveMeta ? 'configured' : 'created', compares, ops };
}

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

export function notFound(kind: Kind, name: string, network?: string): NotFoundError {
  return new NotFoundError(`${plural(kind)} "${name}" not found${network ? ` in network "${network}"` : ''}`);
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
    const ops: Op[] = [{ delete: L.configKey(t.name) }];
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
      const ops: Op[] = [{ delete: L.subnetMetaKey(t.name) }];
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

// ---- reading views ----------------------------------------------------------------------

export function networkViews(snap: Snapshot): NetworkView[] {
  return sortNetworks([...snap.configs.keys()]).map((name) => {
    const view = networkFromStore(name, snap.configs.get(name)!, snap.networkMetas.get(name)?.meta, snap.subnets.get(name) ?? []);
    // A config flanneld would run with but weft's agents refuse (written by hand or by flanneld's operator).
    const unsafe = view.config ? networkSafetyProblems(view.config) : [];
    return unsafe.length ? { ...view, problem: `agents refuse it: ${unsafe.map((p) => `${p.field}: ${p.message}`).join('; ')}` } : view;
  });
}

export function sortNetworks(names: string[]): string[] {
  return names.sort((a, b) => (a === DEFAULT_NETWORK ? -1 : b === DEFAULT_NETWORK ? 1 : a.localeCompare(b)));
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

// ---- node status ------------------------------------------------------------------------

export interface NodeView {
  record: NodeStatusRecord;
  resource: NodeResource;
}

function subnetRecordsByKey(snap: Snapshot): Map<string, SubnetRecord> {
  const out = new Map<string, SubnetRecord>();
  for (const list of snap.subnets.values()) for (const r of list) out.set(r.kv.key, r);
  return out;
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
