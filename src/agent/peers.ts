// From the network's subnet records to the peers the dataplane should reach. Pure, except
// that it remembers which bad keys it already reported so each is logged once.
//
// It also remembers the Peer it built for each record: a record that did not change (the same
// object, or after a re-list the same modRevision and value) yields the very same Peer object,
// so a lease event costs one decode, and the dataplane can tell changed peers by identity.
import { Ipv4, Ipv6 } from '../alloc/cidr.js';
import { screenPeer, type ScreenContext, type ScreenReason } from '../api/peer-screen.js';
import type { Peer } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { SubnetRecord } from '../store/store.js';

interface Entry {
  record: SubnetRecord;
  /** Undefined when the record is not a peer we route (bad, other backend, screened). */
  peer: Peer | undefined;
  /** Why the peer screen left it out, if it did. */
  screened?: ScreenReason;
  gen: number;
}

export class PeerSelector {
  private readonly cache = new Map<string, Entry>();
  private gen = 0;

  /**
   * `family` picks the half of each lease this selector reads: 4 for the IPv4 subnet, PublicIP
   * and BackendData; 6 for the IPv6 subnet, PublicIPv6 and BackendV6Data. Leases without that
   * half are no peers of this family.
   */
  constructor(
    private readonly logger: Logger,
    private readonly backendType: string,
    private readonly family: 4 | 6 = 4,
    /**
     * Whether to log leases that are unusable whatever the family (a bad key or value). A
     * dual-stack agent's second selector leaves that to the first, so each is logged once.
     */
    private readonly reportUnusable = true,
    /**
     * The peer screen's view of this network and host (api/peer-screen.ts): a lease it
     * refuses is left out with one log line, and counted in screenedCounts().
     */
    private readonly screen?: ScreenContext,
  ) {}

  /** Leases the peer screen leaves out right now, by reason. */
  screenedCounts(): Map<ScreenReason, number> {
    const out = new Map<ScreenReason, number>();
    for (const e of this.cache.values()) if (e.screened) out.set(e.screened, (out.get(e.screened) ?? 0) + 1);
    return out;
  }

  select(records: Iterable<SubnetRecord>, ownKey: string | undefined): Peer[] {
    const gen = ++this.gen;
    const peers: Peer[] = [];
    const created = new Map<Peer, number>();
    let visited = 0;
    for (const r of records) {
      visited++;
      let e = this.cache.get(r.kv.key);
      if (e && e.record !== r && e.record.kv.modRevision === r.kv.modRevision && e.record.kv.value === r.kv.value) {
        e.record = r; // re-listed, unchanged
      }
      if (!e || e.record !== r) {
        e = { record: r, peer: this.toPeer(r), gen };
        if (e.peer && this.screen && r.kv.key !== ownKey) {
          // Once per lease value: a changed value is a new record and is screened again.
          const screened = screenPeer(this.screen, e.peer.subnet, e.peer.publicIP);
          if (screened) {
            this.logger.warn('ignoring unsafe lease', { key: r.kv.key, family: this.family, reason: screened.reason, detail: screened.message });
            e.peer = undefined;
            e.screened = screened.reason;
          }
        }
        this.cache.set(r.kv.key, e);
      } else {
        e.gen = gen;
      }
      if (e.peer && r.kv.key !== ownKey) {
        peers.push(e.peer);
        created.set(e.peer, r.kv.createRevision);
      }
    }
    if (visited !== this.cache.size) {
      for (const [key, e] of this.cache) if (e.gen !== gen) this.cache.delete(key);
    }
    return this.withoutOverlaps(peers, created);
  }

  /** key -> reason, for leases left out for overlapping an older one (each logged once). */
  private readonly overlapping = new Map<string, string>();

  /**
   * Of two peer leases whose subnets overlap, keeps the older (lower create revision). The
   * allocator never creates a key overlapping an existing one, so the newer one was written
   * around it: a hostile or broken lease that would route part of a live peer's range (or the
   * whole network) elsewhere. Sorting by address finds the overlapping groups in O(n log n).
   */
  private withoutOverlaps(peers: Peer[], created: Map<Peer, number>): Peer[] {
    const dropped = new Map<Peer, string>();
    // Addresses are numbers (IPv4) or bigints (IPv6), never both in one selector.
    const byAddress = [...peers].sort((a, b) => (a.subnet.first < b.subnet.first ? -1 : a.subnet.first > b.subnet.first ? 1 : 0));
    let group: Peer[] = [];
    const settle = () => {
      if (group.length > 1) {
        const kept: Peer[] = [];
        const age = (p: Peer) => created.get(p) ?? 0;
        for (const p of [...group].sort((a, b) => age(a) - age(b) || (a.key < b.key ? -1 : 1))) {
          const older = kept.find((k) => k.subnet.overlaps(p.subnet));
          if (older) dropped.set(p, `subnet ${p.subnet} overlaps the older lease ${older.key} (${older.subnet})`);
          else kept.push(p);
        }
      }
      group = [];
    };
    let end: number | bigint = -1;
    for (const p of byAddress) {
      if (p.subnet.first > end) settle();
      group.push(p);
      if (p.subnet.last > end) end = p.subnet.last;
    }
    settle();
    const reported = new Map<string, string>();
    for (const [p, reason] of dropped) {
      reported.set(p.key, reason);
      if (this.overlapping.get(p.key) !== reason) this.logger.warn('ignoring unusable lease', { key: p.key, reason });
    }
    this.overlapping.clear();
    for (const [k, v] of reported) this.overlapping.set(k, v);
    return dropped.size === 0 ? peers : peers.filter((p) => !dropped.has(p));
  }

  private toPeer(r: SubnetRecord): Peer | undefined {
    const problem = !r.subnets ? 'key is not a subnet (a.b.c.d-n)' : !r.lease.ok ? r.lease.error : undefined;
    if (problem) {
      if (this.reportUnusable) this.logger.warn('ignoring unusable lease', { key: r.kv.key, reason: problem });
      return undefined;
    }
    if (!r.lease.ok || !r.subnets) return undefined;
    const v = r.lease.value;
    // Unadopted reservations and other backends' leases are not ours to route.
    if (v.backendType !== this.backendType) return undefined;
    let peer: Peer;
    if (this.family === 4) {
      // An IPv6-only key has nothing for the IPv4 dataplane.
      if (!r.cidr) return undefined;
      peer = { key: r.name, subnet: r.cidr, publicIP: Ipv4.parse(v.publicIP)!, backendType: v.backendType };
      if (v.backendData) {
        peer.vtepMAC = v.backendData.VtepMAC;
        peer.vni = v.backendData.VNI;
      }
    } else {
      const subnet = r.subnets.ipv6;
      const publicIP = Ipv6.parse(v.publicIPv6);
      if (!subnet || !publicIP) return undefined;
      peer = { key: r.name, subnet, publicIP, backendType: v.backendType };
      if (v.backendV6Data) {
        peer.vtepMAC = v.backendV6Data.VtepMAC;
        peer.vni = v.backendV6Data.VNI;
      }
    }
    return peer;
  }
}
