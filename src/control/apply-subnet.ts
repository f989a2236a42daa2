// `weft apply` of a Subnet (a reservation): the subnets it reserves in each stack of its
// network, refused on any overlap with another reservation or a live lease.
import { Cidr, Cidr6, Ipv6 } from '../alloc/cidr.js';
import { encodeSubnetMeta, holderMatches, keyNameOfMeta, networkFromStore, reservationValue, subnetsOfMeta, type SubnetMeta } from '../api/convert.js';
import { describeLeaseKey, formatLeaseKey, type LeaseKey } from '../api/lease.js';
import { subnet6Fits, subnetFits, type NetworkConfig } from '../api/network.js';
import type { SubnetRecord } from '../api/records.js';
import type { SubnetResource } from '../api/types.js';
import { compareKey, type Compare, type TxnOp } from '../store/txn.js';
import { checkResourceVersion, describeHolder, PlanProblems, refOf, type Plan, type PlanContext } from './plan.js';
import { findSubnetRecord, type Snapshot } from './snapshot.js';

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
  // The IPv6 twin of the IPv4 checks above, on the ipv6* fields; kept apart so that each
  // message names its family's field.
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
  const ops: TxnOp[] = [];
  if (oldRecord && oldRecord.kv.key !== key) {
    compares.push(compareKey(oldRecord.kv.key, oldRecord.kv));
    if (oldRecord.reserved) ops.push({ delete: oldRecord.kv.key });
  }
  // Re-put on label changes too, so resourceVersion (the key's mod revision) moves.
  ops.push({ put: key, value }, { put: metaKey, value: metaBytes });
  return { ref, action: liveMeta ? 'configured' : 'created', compares, ops };
}
