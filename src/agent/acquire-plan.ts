// Deciding which subnet this host should hold: Flannel's order with weft's fixes. Pure.
//
// 1. a reservation for this node name or public IP (kept a reservation: no TTL);
// 2. an existing lease for this node name, else this public IP, if it still fits;
//    leases of ours that no longer fit are released;
// 3. the subnet from the previous subnet.env, if free and it fits;
// 4. a random pick among the first 100 free subnets (first-free makes joins collide).
import type { Cidr, Ipv4 } from '../alloc/cidr.js';
import { freeSubnets, pickRandom } from '../alloc/candidates.js';
import { subnetFits, type NetworkConfig } from '../api/network.js';
import type { SubnetRecord } from '../store/store.js';

export interface Identity {
  nodeName: string;
  publicIP: Ipv4;
}

export type AcquisitionPlan =
  | { action: 'adopt-reservation'; record: SubnetRecord; release: SubnetRecord[] }
  | { action: 'reuse'; record: SubnetRecord; matchedBy: 'node-name' | 'public-ip'; release: SubnetRecord[] }
  | { action: 'create'; subnet: Cidr; source: 'previous' | 'random'; release: SubnetRecord[] }
  | { action: 'full'; release: SubnetRecord[] };

function ownedBy(record: SubnetRecord, id: Identity): 'node-name' | 'public-ip' | undefined {
  if (!record.lease.ok) return undefined;
  const v = record.lease.value;
  if (v.nodeName) return v.nodeName === id.nodeName ? 'node-name' : undefined;
  // Written by flanneld or by an operator without a node: flannel's rule, match the IP.
  return v.publicIP === id.publicIP.toString() ? 'public-ip' : undefined;
}

export function planAcquisition(
  config: NetworkConfig,
  records: SubnetRecord[],
  id: Identity,
  previous: Cidr | undefined,
  random: () => number = Math.random,
): AcquisitionPlan {
  const fits = (r: SubnetRecord) => r.cidr !== undefined && subnetFits(config, r.cidr);

  const reservations = records.filter((r) => r.reserved && fits(r));
  const reservation =
    reservations.find((r) => ownedBy(r, id) === 'node-name') ??
    reservations.find((r) => ownedBy(r, id) === 'public-ip');

  const mine = records.filter((r) => !r.reserved && ownedBy(r, id) !== undefined);
  const release = mine.filter((r) => !fits(r) || (reservation !== undefined && r !== reservation));
  if (reservation) return { action: 'adopt-reservation', record: reservation, release };

  const usable = mine.filter(fits);
  const byName = usable.find((r) => ownedBy(r, id) === 'node-name');
  const existing = byName ?? usable.find((r) => ownedBy(r, id) === 'public-ip');
  if (existing) {
    // Any second lease of ours (two keys for one node) is released too.
    const extra = usable.filter((r) => r !== existing);
    return {
      action: 'reuse',
      record: existing,
      matchedBy: byName ? 'node-name' : 'public-ip',
      release: [...release, ...extra],
    };
  }

  // A key whose value does not decode holds nothing any host can use: letting it block the
  // space it spans would let one hostile key ("10.5.0.0-16": "junk") stop every join. Only its
  // own key stays unusable (the create transaction would fail on it).
  const taken = records
    .filter((r) => !release.includes(r) && (r.lease.ok || r.cidr?.prefix === config.subnetLen))
    .map((r) => r.cidr)
    .filter((c): c is Cidr => c !== undefined);
  if (previous && subnetFits(config, previous) && !taken.some((t) => t.overlaps(previous))) {
    return { action: 'create', subnet: previous, source: 'previous', release };
  }
  const free = freeSubnets(
    { network: config.network, subnetLen: config.subnetLen, min: config.subnetMin.value, max: config.subnetMax.value },
    taken,
    100,
  );
  const pick = pickRandom(free, random);
  if (!pick) return { action: 'full', release };
  return { action: 'create', subnet: pick, source: 'random', release };
}
