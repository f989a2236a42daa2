// Deciding which subnets this host should hold: Flannel's order with weft's fixes. Pure.
//
// 1. a reservation for this node name or public IP (kept a reservation: no TTL);
// 2. an existing lease for this node name, else this public IP, if it still fits;
//    leases of ours that no longer fit are released;
// 3. the subnets from the previous subnet.env, if free and they fit;
// 4. a random pick among free subnets (first-free makes joins collide).
//
// A host holds one key: IPv4-only, dual-stack (one subnet of each family) or IPv6-only. The
// public IP that identifies a host without a node name is its IPv4 one when the network has
// IPv4, else its IPv6 one: an IPv6-only lease carries PublicIP 0.0.0.0, and matching on that
// (flanneld does) hands every IPv6-only host the first one's lease.
import type { Cidr, Cidr6, Ipv4, Ipv6 } from '../alloc/cidr.js';
import { freeSubnets, freeSubnets6, pickRandom } from '../alloc/candidates.js';
import { isPlaceholderPublicIP, type LeaseKey } from '../api/lease.js';
import { keyFits, subnet6Fits, subnetFits, type NetworkConfig } from '../api/network.js';
import type { SubnetRecord } from '../store/store.js';

export interface Identity {
  nodeName: string;
  /** This host's IPv4 public IP; needed when the network has IPv4. */
  publicIP?: Ipv4;
  /** This host's IPv6 public IP; needed when the network has IPv6. */
  publicIPv6?: Ipv6;
}

export type MatchedBy = 'node-name' | 'public-ip' | 'public-ipv6';

export type AcquisitionPlan =
  | { action: 'adopt-reservation'; record: SubnetRecord; release: SubnetRecord[] }
  | { action: 'reuse'; record: SubnetRecord; matchedBy: MatchedBy; release: SubnetRecord[] }
  | { action: 'create'; subnets: LeaseKey; source: 'previous' | 'random'; release: SubnetRecord[] }
  /** `stacks`: the families with no free subnet ("IPv4", "IPv6"). */
  | { action: 'full'; stacks: string[]; release: SubnetRecord[] };

/** `publicIP`: id.publicIP as text, made once per plan rather than once per lease. */
function ownedBy(config: NetworkConfig, record: SubnetRecord, id: Identity, publicIP: string | undefined): MatchedBy | undefined {
  if (!record.lease.ok) return undefined;
  const v = record.lease.value;
  if (v.nodeName) return v.nodeName === id.nodeName ? 'node-name' : undefined;
  // Written by flanneld or by an operator without a node: flannel's rule, match the IP.
  if (config.ipv4) {
    return publicIP !== undefined && !isPlaceholderPublicIP(v.publicIP) && v.publicIP === publicIP ? 'public-ip' : undefined;
  }
  return id.publicIPv6 && v.publicIPv6 && v.publicIPv6 === id.publicIPv6.toString() ? 'public-ipv6' : undefined;
}

/**
 * Whether a key holds its subnets against others: only a key of the network's subnet length
 * does. The allocator never writes another length, so any other key was written around it
 * (by hand, or by a hostile writer): letting "10.5.0.0-16" with a well-formed value block the
 * space it spans would stop every join while `weft get networks` shows the space free. Its
 * own subnets are not routed by peers either (their screen wants the subnet length too).
 */
function holds4(config: NetworkConfig, r: SubnetRecord): Cidr | undefined {
  const c = r.subnets?.ipv4;
  return c && c.prefix === config.ipv4?.subnetLen ? c : undefined;
}

function holds6(config: NetworkConfig, r: SubnetRecord): Cidr6 | undefined {
  const c = r.subnets?.ipv6;
  return c && c.prefix === config.ipv6?.subnetLen ? c : undefined;
}

export function planAcquisition(
  config: NetworkConfig,
  records: SubnetRecord[],
  id: Identity,
  previous: LeaseKey | undefined,
  random: () => number = Math.random,
): AcquisitionPlan {
  const fits = (r: SubnetRecord) => r.subnets !== undefined && keyFits(config, r.subnets);
  const publicIP = id.publicIP?.toString();
  const owner = (r: SubnetRecord) => ownedBy(config, r, id, publicIP);

  const reservations = records.filter((r) => r.reserved && fits(r));
  const reservation =
    reservations.find((r) => owner(r) === 'node-name') ?? reservations.find((r) => owner(r) !== undefined);

  const mine = records.filter((r) => !r.reserved && owner(r) !== undefined);
  const release = mine.filter((r) => !fits(r) || (reservation !== undefined && r !== reservation));
  if (reservation) return { action: 'adopt-reservation', record: reservation, release };

  const usable = mine.filter(fits);
  const byName = usable.find((r) => owner(r) === 'node-name');
  const existing = byName ?? usable.find((r) => owner(r) !== undefined);
  if (existing) {
    // Any second lease of ours (two keys for one node) is released too.
    const extra = usable.filter((r) => r !== existing);
    return { action: 'reuse', record: existing, matchedBy: owner(existing)!, release: [...release, ...extra] };
  }

  const others = records.filter((r) => !release.includes(r));
  const subnets: LeaseKey = {};
  const full: string[] = [];
  let fromPrevious = true;
  if (config.ipv4) {
    const stack = config.ipv4;
    const taken = others.map((r) => holds4(config, r)).filter((c): c is Cidr => c !== undefined);
    const prev = previous?.ipv4;
    if (prev && subnetFits(stack, prev) && !taken.some((t) => t.overlaps(prev))) {
      subnets.ipv4 = prev;
    } else {
      fromPrevious = false;
      const free = freeSubnets(
        { network: stack.network, subnetLen: stack.subnetLen, min: stack.subnetMin.value, max: stack.subnetMax.value },
        taken,
        100,
      );
      const pick = pickRandom(free, random);
      if (pick) subnets.ipv4 = pick;
      else full.push('IPv4');
    }
  }
  // The IPv6 twin of the IPv4 pick above: candidates are sampled from a range too large to
  // walk (bigint subnet numbers), where IPv4 walks its free subnets.
  if (config.ipv6) {
    const stack = config.ipv6;
    const taken = others.map((r) => holds6(config, r)).filter((c): c is Cidr6 => c !== undefined);
    const prev = previous?.ipv6;
    if (prev && subnet6Fits(stack, prev) && !taken.some((t) => t.overlaps(prev))) {
      subnets.ipv6 = prev;
    } else {
      fromPrevious = false;
      const free = freeSubnets6(
        { network: stack.network, subnetLen: stack.subnetLen, min: stack.subnetMin.value, max: stack.subnetMax.value },
        taken,
        100,
        random,
      );
      const pick = pickRandom(free, random);
      if (pick) subnets.ipv6 = pick;
      else full.push('IPv6');
    }
  }
  if (full.length > 0) return { action: 'full', stacks: full, release };
  return { action: 'create', subnets, source: fromPrevious ? 'previous' : 'random', release };
}

/**
 * After our key was created: the oldest other key that holds a subnet overlapping one of
 * ours and was created before ours, if any. Of two such keys the newer gives way (both
 * writers see the same create revisions, so exactly one does), the way peers already ignore
 * the newer of two overlapping leases. Needed for the IPv6 half, which the create
 * transaction cannot guard (see LeaseWriter.create).
 */
export function olderOverlap(
  config: NetworkConfig,
  records: SubnetRecord[],
  own: { key: string; subnets: LeaseKey; createRevision: number },
): SubnetRecord | undefined {
  let found: SubnetRecord | undefined;
  for (const r of records) {
    if (r.kv.key === own.key || r.kv.createRevision >= own.createRevision) continue;
    const v4 = own.subnets.ipv4 && holds4(config, r);
    const v6 = own.subnets.ipv6 && holds6(config, r);
    const clash = (v4 && v4.overlaps(own.subnets.ipv4!)) || (v6 && v6.overlaps(own.subnets.ipv6!));
    if (clash && (!found || r.kv.createRevision < found.kv.createRevision)) found = r;
  }
  return found;
}
