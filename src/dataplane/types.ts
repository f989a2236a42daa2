// The seam between the agent (which knows leases) and the dataplane (which knows the kernel).
import type { Cidr, Cidr6, IpAddr, IpNet, Ipv4, Ipv6 } from '../alloc/cidr.js';

/**
 * A remote host's lease, already decoded and validated by the agent, as one backend sees it:
 * an IPv6 backend gets the lease's IPv6 subnet, PublicIPv6 and BackendV6Data's VtepMAC.
 */
export interface Peer {
  /** The lease key ("10.5.3.0-24"), for logs. */
  key: string;
  /** Of the backend's family. */
  subnet: IpNet;
  /** Of the backend's family: the underlay carries each family's overlay (as flannel). */
  publicIP: IpAddr;
  backendType: string;
  /** Canonical lowercase MAC; present for vxlan peers. */
  vtepMAC?: string;
  vni?: number;
  /**
   * The lease's etcd create revision. When two peers claim one kernel entry (the same VTEP
   * MAC, say), the older lease keeps it. Without it, the order peers were first given in.
   */
  since?: number;
}

/** Peer changes by key: the new peer, or undefined for one that is gone. */
export type PeerDelta = ReadonlyMap<string, Peer | undefined>;

/** A peer of an IPv4 backend (what the agent reads from a lease's IPv4 half). */
export type Peer4 = Peer & { subnet: Cidr; publicIP: Ipv4 };
/** A peer of an IPv6 backend: the lease's IPv6 subnet, PublicIPv6 and BackendV6Data. */
export type Peer6 = Peer & { subnet: Cidr6; publicIP: Ipv6 };

/** What the host's uplink looks like, as chosen by the agent's interface selection. */
export interface Uplink {
  name: string;
  index: number;
  mtu: number;
  /** The uplink's address of the backend's family. */
  address: IpAddr;
  /**
   * Prefix length of `address` on the uplink: peers whose public IP falls in that connected
   * subnet are on-link (directRouting, host-gw).
   */
  prefixLength: number;
}

export type Uplink4 = Uplink & { address: Ipv4 };
export type Uplink6 = Uplink & { address: Ipv6 };

export interface BackendSettings {
  type: 'vxlan' | 'host-gw';
  /**
   * The address family this backend serves, overlay and underlay alike; 4 when left out. A
   * dual-stack network has two backends, one per family (devices flannel.<VNI> and
   * flannel-v6.<VNI>).
   */
  family?: 4 | 6;
  vni: number;
  /** 0 = the kernel default (DEFAULT_VXLAN_PORT in api/network.ts). */
  port: number;
  /**
   * The underlay's MTU, as flanneld's Backend.MTU (default the uplink's): the vxlan device gets
   * it less the encapsulation (50 bytes, 70 over IPv6).
   */
  mtu?: number;
  directRouting: boolean;
  gbp: boolean;
  /**
   * The mark weft puts in its vxlan device's alias ("weft:<network>"): a device another
   * network's agent marked is never adopted, replaced or cleaned (two Networks with one VNI).
   */
  owner?: string;
  /**
   * The overlay network. When given, peers whose subnet lies outside it are never routed
   * (a hostile lease cannot install, say, a default route).
   */
  network?: IpNet;
}

/** Kernel operations of one reconcile per kind of entry: applied, and refused (or not attempted). */
export type KernelOpCounts = Record<'route' | 'neigh' | 'fdb', { ok: number; failed: number }>;

export interface ReconcileReport {
  /** Kernel operations applied (route/neigh/fdb adds, replaces, deletes). */
  operations: number;
  /** Operations the kernel refused; the next resync retries them. */
  failures: number;
  /** The same operations split by kind of entry (for metrics). */
  byKind?: KernelOpCounts;
  /**
   * Peers whose route is in the kernel after this call (a vxlan route goes in only once its
   * neighbour and FDB entry did). Peers left out (unusable lease, conflict) do not count.
   */
  peersProgrammed?: number;
  /** Peers the model leaves out on purpose (logged as "not routing to peer"). */
  skipped?: number;
  /** Of those, peers whose route a route weft did not create holds (never replaced). */
  routeConflicts?: number;
  /** The VTEP MAC in use; changes only when the device had to be recreated. */
  vtepMAC?: string;
  /** Wall time of the call's model and planning work plus kernel work, in ms (for logs and benches). */
  ms?: number;
  /** The part of `ms` spent waiting for iproute2. */
  kernelMs?: number;
}

/**
 * One network's kernel state on this host. The backend keeps the desired state per peer and
 * what it believes the kernel holds; it is told of peer changes (`update`) or handed the whole
 * set (`reconcile`, which works out the changes itself), and converges the kernel.
 */
export interface UpdateOptions {
  resync?: boolean;
  /**
   * More peer changes after `delta`, each made when it is taken (the listing at start, fed to
   * the peer sets a chunk at a time): a backend that converges in chunks takes them while the
   * kernel works on the earlier ones. The caller hands over whatever is not taken in its next call.
   */
  more?: Iterable<PeerDelta>;
  /**
   * The own subnet is the one the lease's acquisition is writing, not yet ours: the peers are
   * programmed around it, but nothing of this host's own (the device's address) is set. A
   * later call without it sets that.
   */
  provisional?: boolean;
}

export interface Backend {
  /** Creates or adopts the device (vxlan) and returns what the lease must publish. */
  prepare(): Promise<{ vtepMAC?: string; mtu: number }>;
  /**
   * Applies peer changes since the last call and converges the kernel to ownSubnet + peers:
   * work proportional to the change. With `resync`, the kernel is re-read first (drift repair).
   */
  update(ownSubnet: IpNet, delta: PeerDelta, opts?: UpdateOptions): Promise<ReconcileReport>;
  /**
   * The same from the whole peer set: peers that did not change should be the same objects as
   * in the previous call (a pointer comparison per unchanged peer finds the changes).
   */
  reconcile(ownSubnet: IpNet, peers: Peer[], opts?: { resync?: boolean }): Promise<ReconcileReport>;
  /**
   * Calls `listener` (debounced) when the kernel's notifications show weft's entries or device
   * changed by someone else; the next reconcile() repairs exactly that. Only backends on the
   * netlink channel see notifications; others rely on the periodic resync. Returns an unsubscribe.
   */
  onDrift?(listener: (what: string) => void): () => void;
  /**
   * About this many peers are coming (the listing at start): the backend may get ready for a
   * bulk first pass (netlink starts its bulk thread, which then loads beside the lease's
   * acquisition).
   */
  expectPeers?(count: number): void;
}
