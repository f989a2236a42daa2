// From the network's subnet records to the peers the dataplane should reach. Pure, except
// that it remembers which bad keys it already reported so each is logged once.
import { Ipv4 } from '../alloc/cidr.js';
import type { Peer } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { SubnetRecord } from '../store/store.js';

export class PeerSelector {
  /** key -> modRevision of the bad value we already logged. */
  private readonly reported = new Map<string, number>();

  constructor(
    private readonly logger: Logger,
    private readonly backendType: string,
  ) {}

  select(records: Iterable<SubnetRecord>, ownKey: string | undefined): Peer[] {
    const peers: Peer[] = [];
    const seen = new Set<string>();
    for (const r of records) {
      seen.add(r.kv.key);
      if (r.kv.key === ownKey) continue;
      const problem = !r.cidr ? 'key is not a subnet (a.b.c.d-n)' : !r.lease.ok ? r.lease.error : undefined;
      if (problem) {
        if (this.reported.get(r.kv.key) !== r.kv.modRevision) {
          this.reported.set(r.kv.key, r.kv.modRevision);
          this.logger.warn('ignoring unusable lease', { key: r.kv.key, reason: problem });
        }
        continue;
      }
      if (!r.lease.ok || !r.cidr) continue;
      const v = r.lease.value;
      // Unadopted reservations and other backends' leases are not ours to route.
      if (v.backendType !== this.backendType) continue;
      const peer: Peer = { key: r.name, subnet: r.cidr, publicIP: Ipv4.parse(v.publicIP)!, backendType: v.backendType };
      if (v.backendData) {
        peer.vtepMAC = v.backendData.VtepMAC;
        peer.vni = v.backendData.VNI;
      }
      peers.push(peer);
    }
    for (const key of this.reported.keys()) if (!seen.has(key)) this.reported.delete(key);
    return peers;
  }
}
