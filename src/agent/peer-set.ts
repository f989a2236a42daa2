// The peers this host routes to, in one address family, kept up to date from lease changes.
//
// The selection rules, applied per change (work proportional to the change, never a pass over
// every lease or a sort of them):
//   - a lease that does not decode (bad key or value) is no peer, and is logged once;
//   - a lease of another backend type, or without this family's half, is no peer;
//   - our own lease is no peer;
//   - a lease the peer screen refuses (api/peer-screen.ts: its public IP, prefix length, a
//     subnet over the default route, the uplink's network or a local address) is no peer,
//     and is logged once per lease value ('ignoring unsafe lease');
//   - of two peer leases whose subnets overlap, the older (lower create revision) is kept.
//     The allocator never creates a key overlapping an existing one, so the newer was written
//     around it: a hostile or broken lease that would route part of a live peer's range (or
//     the whole network) elsewhere.
// What the dataplane gets is a delta (key -> Peer, or undefined when gone) since the last
// take(), plus the lines that log it.
import { Ipv4, Ipv6, netOf, type IpAddr, type IpNet } from '../alloc/cidr.js';
import type { VxlanBackendData } from '../api/lease.js';
import { screenPeer, type ScreenContext, type ScreenReason } from '../api/peer-screen.js';
import type { Peer, PeerDelta } from '../dataplane/types.js';
import type { Fields, Logger } from '../log.js';
import type { SubnetRecord } from '../store/store.js';
import type { LeaseChange } from './lease-watch.js';

export interface PeerInfo {
  /** The lease's etcd key. */
  key: string;
  publicIP: string;
  vtepMAC?: string;
  /** The peer's node name, when its lease carries one. */
  node?: string;
}

export interface PeerChanges {
  added: PeerInfo[];
  removed: PeerInfo[];
  /** Same lease key, new public IP or VTEP MAC (a host that came back with a new device). */
  changed: PeerInfo[];
}

/** A lease that yields a peer of this family, before the overlap rule. */
interface Candidate {
  /** The etcd key. */
  key: string;
  peer: Peer;
  created: number;
  node: string | undefined;
  /** Kept by the overlap rule. */
  selected: boolean;
  /** Why the overlap rule leaves it out (logged when it changes). */
  overlap: string | undefined;
  /** Why the peer screen leaves it out: never a peer, and kept out of the overlap index. */
  screened: ScreenReason | undefined;
  /** In the overlap index (SubnetIndex) now. */
  indexed: boolean;
}

export class PeerSet {
  /** Every lease that yields a candidate, by etcd key (our own included). */
  private readonly candidates = new Map<string, Candidate>();
  /** Candidates other than our own, by subnet: the overlap index. */
  private readonly bySubnet = new SubnetIndex();
  private ownKey: string | undefined;
  /** etcd key -> the peer as of the last take() (undefined: none), for keys changed since. */
  private readonly pending = new Map<string, Candidate | undefined>();
  private selectedCount = 0;

  /**
   * `family` picks the half of each lease this set reads: 4 for the IPv4 subnet, PublicIP and
   * BackendData; 6 for the IPv6 subnet, PublicIPv6 and BackendV6Data.
   */
  constructor(
    private readonly logger: Logger,
    private readonly backendType: string,
    private readonly family: 4 | 6 = 4,
    /**
     * Whether to log leases that are unusable whatever the family (a bad key or value). A
     * dual-stack agent's second set leaves that to the first, so each is logged once.
     */
    private readonly reportUnusable = true,
    /**
     * The peer screen's view of this network and host (agent/peer-screens.ts): a lease it
     * refuses is left out with one log line, and counted in screenedCounts().
     */
    private readonly screen?: ScreenContext,
  ) {}

  /** Leases the peer screen leaves out right now (our own never counts), by reason. */
  screenedCounts(): Map<ScreenReason, number> {
    const out = new Map<ScreenReason, number>();
    for (const key of this.screenedKeys) {
      const c = this.candidates.get(key);
      if (c?.screened && key !== this.ownKey) out.set(c.screened, (out.get(c.screened) ?? 0) + 1);
    }
    return out;
  }

  /** Keys of the candidates the screen refused (few: a pass over them is cheap). */
  private readonly screenedKeys = new Set<string>();

  /** Peers selected now. */
  get size(): number {
    return this.selectedCount;
  }

  /** Every selected peer (a full pass: for tests and the reference computation). */
  *peers(): Iterable<Peer> {
    for (const c of this.candidates.values()) if (this.isPeer(c)) yield c.peer;
  }

  /** Our own lease key: never a peer. Changing it moves the old key back among the peers. */
  setOwnKey(key: string | undefined): void {
    if (key === this.ownKey) return;
    const before = this.ownKey;
    const seeds = new Set<Candidate>();
    for (const k of [before, key]) {
      const c = k === undefined ? undefined : this.candidates.get(k);
      if (c) this.unindex(c, seeds);
    }
    this.ownKey = key;
    const old = before === undefined ? undefined : this.candidates.get(before);
    if (old) this.index(old, seeds);
    this.settle(seeds);
  }

  /** Applies lease changes from the watch; the resulting peer changes wait for take(). */
  apply(changes: readonly LeaseChange[]): void {
    const seeds = new Set<Candidate>();
    for (const change of changes) {
      this.touch(change.key);
      const old = this.candidates.get(change.key);
      if (old) {
        this.unindex(old, seeds);
        this.candidates.delete(change.key);
        this.screenedKeys.delete(change.key);
      }
      if (change.type === 'deleted') continue;
      const c = this.candidate(change.record);
      if (!c) continue;
      this.candidates.set(c.key, c);
      if (c.screened) this.screenedKeys.add(c.key);
      if (c.key !== this.ownKey) this.index(c, seeds);
    }
    this.settle(seeds);
  }

  /** The peer changes since the last take(): for the dataplane (by lease name) and for the log. */
  take(): { delta: PeerDelta; changes: PeerChanges } {
    const delta = new Map<string, Peer | undefined>();
    const changes: PeerChanges = { added: [], removed: [], changed: [] };
    for (const [key, before] of this.pending) {
      const c = this.candidates.get(key);
      const after = c && this.isPeer(c) ? c : undefined;
      if (before === after) continue;
      if (before && after) {
        delta.set(after.peer.key, after.peer);
        if (!before.peer.publicIP.equals(after.peer.publicIP) || before.peer.vtepMAC !== after.peer.vtepMAC) changes.changed.push(info(after));
      } else if (after) {
        delta.set(after.peer.key, after.peer);
        changes.added.push(info(after));
      } else if (before) {
        delta.set(before.peer.key, undefined);
        changes.removed.push(info(before));
      }
    }
    this.pending.clear();
    return { delta, changes };
  }

  private isPeer(c: Candidate): boolean {
    return c.selected && c.key !== this.ownKey && !c.screened;
  }

  /** Remembers what the dataplane had for a key, before the first change since the last take(). */
  private touch(key: string): void {
    if (this.pending.has(key)) return;
    const c = this.candidates.get(key);
    this.pending.set(key, c && this.isPeer(c) ? c : undefined);
  }

  private index(c: Candidate, seeds: Set<Candidate>): void {
    this.touch(c.key);
    // A screened lease shadows no one: a hostile /8 must not push an honest lease out.
    if (c.screened) return;
    this.bySubnet.add(c);
    seeds.add(c);
  }

  /** Takes a candidate out of the overlap index; the ones it overlapped must be looked at again. */
  private unindex(c: Candidate, seeds: Set<Candidate>): void {
    this.touch(c.key);
    if (!this.bySubnet.delete(c)) return;
    if (c.selected) this.selectedCount--;
    c.selected = false;
    seeds.delete(c);
    for (const other of this.bySubnet.overlapping(c.peer.subnet)) seeds.add(other);
  }

  /**
   * The overlap rule for each group of overlapping candidates that holds a seed: in order of
   * age, a candidate is kept unless it overlaps one kept before it.
   */
  private settle(seeds: Set<Candidate>): void {
    const done = new Set<Candidate>();
    for (const seed of seeds) {
      if (done.has(seed) || !this.bySubnet.has(seed)) continue;
      if (this.bySubnet.alone(seed)) {
        // Overlaps no one (nearly every lease): kept. The same outcome as below, without a group.
        if (!seed.selected) {
          this.touch(seed.key);
          this.selectedCount++;
          seed.selected = true;
        }
        seed.overlap = undefined;
        continue;
      }
      const group = [seed];
      done.add(seed);
      for (let i = 0; i < group.length; i++) {
        for (const other of this.bySubnet.overlapping(group[i]!.peer.subnet)) {
          if (!done.has(other)) {
            done.add(other);
            group.push(other);
          }
        }
      }
      group.sort((a, b) => a.created - b.created || (a.key < b.key ? -1 : 1));
      const kept: Candidate[] = [];
      for (const c of group) {
        const older = kept.find((k) => k.peer.subnet.overlaps(c.peer.subnet));
        const overlap = older ? `subnet ${c.peer.subnet} overlaps the older lease ${older.peer.key} (${older.peer.subnet})` : undefined;
        if (!older) kept.push(c);
        if (c.selected !== !older) {
          this.touch(c.key);
          this.selectedCount += older ? -1 : 1;
          c.selected = !older;
        }
        if (overlap && overlap !== c.overlap) this.logger.warn('ignoring unusable lease', { key: c.peer.key, reason: overlap });
        c.overlap = overlap;
      }
    }
  }

  /** The candidate a record yields, or undefined (an unusable lease is logged here, once per change). */
  private candidate(r: SubnetRecord): Candidate | undefined {
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
      peer = peerOf(r.name, r.cidr, Ipv4.parse(v.publicIP)!, v.backendType, v.backendData, r.kv.createRevision);
    } else {
      const subnet = r.subnets.ipv6;
      const publicIP = Ipv6.parse(v.publicIPv6);
      if (!subnet || !publicIP) return undefined;
      peer = peerOf(r.name, subnet, publicIP, v.backendType, v.backendV6Data, r.kv.createRevision);
    }
    // Once per lease value: a changed value is a new record, and is screened again. Our own
    // lease is never a peer (its subnet holds our own vxlan address), so it is not reported.
    const screened = this.screen ? screenPeer(this.screen, peer.subnet, peer.publicIP) : undefined;
    if (screened && r.kv.key !== this.ownKey) {
      this.logger.warn('ignoring unsafe lease', { key: r.kv.key, family: this.family, reason: screened.reason, detail: screened.message });
    }
    return { key: r.kv.key, peer, created: r.kv.createRevision, node: v.nodeName, selected: false, overlap: undefined, screened: screened?.reason, indexed: false };
  }
}

/**
 * A peer in one object literal, its VTEP fields undefined when the lease has none: one shape
 * for every peer, its fields in the object (adding them afterwards put them in a property
 * array of their own, 40 bytes more per peer for the lease's life).
 */
function peerOf(key: string, subnet: IpNet, publicIP: IpAddr, backendType: string, vxlan: VxlanBackendData | undefined, since: number): Peer {
  return { key, subnet, publicIP, backendType, vtepMAC: vxlan?.VtepMAC, vni: vxlan?.VNI, since };
}

function info(c: Candidate): PeerInfo {
  return { key: c.key, publicIP: c.peer.publicIP.toString(), ...(c.peer.vtepMAC ? { vtepMAC: c.peer.vtepMAC } : {}), ...(c.node ? { node: c.node } : {}) };
}

/**
 * Candidates by subnet, answering "which overlap this subnet?" without a scan. Two CIDRs
 * overlap only when one contains the other: the containing ones are found by looking up the
 * subnet's shorter prefixes (only the lengths present), the contained ones (and equal ones)
 * in an array sorted by first address. Both go through that one array (a binary search): a
 * Map by subnet text and a Set of members beside it cost ~140 bytes per peer of an idle agent
 * (its keys were 5,000 more strings), for lookups that are rare (a prefix length shorter
 * than the subnet's must be present) or answered by the candidate's own `indexed` flag.
 */
class SubnetIndex {
  private sorted: Candidate[] = [];
  /**
   * Added but not yet in `sorted`: put in with one sort at the next read. The first pass at
   * start adds thousands of leases in key order, which is not address order; one splice each
   * moved half the array every time.
   */
  private unsorted: Candidate[] = [];
  /** prefix length -> how many candidates have it. */
  private readonly lengths = new Map<number, number>();

  has(c: Candidate): boolean {
    return c.indexed;
  }

  add(c: Candidate): void {
    if (c.indexed) return;
    c.indexed = true;
    this.unsorted.push(c);
    const prefix = c.peer.subnet.prefix;
    this.lengths.set(prefix, (this.lengths.get(prefix) ?? 0) + 1);
  }

  delete(c: Candidate): boolean {
    if (!c.indexed) return false;
    c.indexed = false;
    this.sortIn();
    const subnet = c.peer.subnet;
    for (let i = this.lowerBound(subnet.first); i < this.sorted.length; i++) {
      if (this.sorted[i] === c) {
        this.sorted.splice(i, 1);
        break;
      }
    }
    const n = this.lengths.get(subnet.prefix)! - 1;
    if (n === 0) this.lengths.delete(subnet.prefix);
    else this.lengths.set(subnet.prefix, n);
    return true;
  }

  /** Whether no other candidate's subnet overlaps c's. */
  alone(c: Candidate): boolean {
    this.sortIn();
    const subnet = c.peer.subnet;
    for (const len of this.lengths.keys()) {
      if (len < subnet.prefix && !this.withSubnet(netOf(subnet.network, len)).next().done) return false;
    }
    for (let i = this.lowerBound(subnet.first); i < this.sorted.length; i++) {
      const o = this.sorted[i]!;
      if (o.peer.subnet.first > subnet.last) break;
      if (o !== c) return false;
    }
    return true;
  }

  /** Candidates whose subnet overlaps `subnet` (the subnet's own candidates included). */
  *overlapping(subnet: IpNet): Iterable<Candidate> {
    this.sortIn();
    for (const len of this.lengths.keys()) {
      if (len < subnet.prefix) yield* this.withSubnet(netOf(subnet.network, len));
    }
    for (let i = this.lowerBound(subnet.first); i < this.sorted.length; i++) {
      const c = this.sorted[i]!;
      if (c.peer.subnet.first > subnet.last) break;
      yield c;
    }
  }

  /** The candidates whose subnet is exactly `net` (after sortIn): those starting where it starts, of its length. */
  private *withSubnet(net: IpNet): Generator<Candidate, void> {
    for (let i = this.lowerBound(net.first); i < this.sorted.length; i++) {
      const c = this.sorted[i]!;
      if (c.peer.subnet.first !== net.first) break;
      if (c.peer.subnet.prefix === net.prefix) yield c;
    }
  }

  private sortIn(): void {
    if (this.unsorted.length === 0) return;
    const add = this.unsorted;
    this.unsorted = [];
    if (add.length < 8) {
      for (const c of add) this.sorted.splice(this.lowerBound(c.peer.subnet.first), 0, c);
      return;
    }
    const all = this.sorted.concat(add);
    all.sort((a, b) => (a.peer.subnet.first < b.peer.subnet.first ? -1 : a.peer.subnet.first > b.peer.subnet.first ? 1 : 0));
    this.sorted = all;
  }

  /** The first index whose subnet starts at or after `first`. */
  private lowerBound(first: number | bigint): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]!.peer.subnet.first < first) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Above this many changes in one reconcile, one summary line instead of one per peer. */
export const PEER_LOG_LIMIT = 20;

export interface LogLine {
  msg: string;
  fields: Fields;
}

/** The info lines for one reconcile's peer changes. */
export function peerChangeLines(c: PeerChanges, limit = PEER_LOG_LIMIT): LogLine[] {
  const total = c.added.length + c.removed.length + c.changed.length;
  if (total === 0) return [];
  if (total > limit) {
    return [{ msg: 'peers changed', fields: { added: c.added.length, removed: c.removed.length, changed: c.changed.length } }];
  }
  const subject = (p: PeerInfo): Fields => ({
    key: p.key,
    ...(p.node !== undefined ? { peerNode: p.node } : {}),
    publicIP: p.publicIP,
    ...(p.vtepMAC !== undefined ? { vtepMAC: p.vtepMAC } : {}),
  });
  return [
    ...c.added.map((p) => ({ msg: 'peer added', fields: subject(p) })),
    ...c.changed.map((p) => ({ msg: 'peer changed', fields: subject(p) })),
    ...c.removed.map((p) => ({ msg: 'peer removed', fields: subject(p) })),
  ];
}
