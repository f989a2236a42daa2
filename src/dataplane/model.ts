// Kernel entries as typed values, and the desired set computed from the leases. Pure.
//
// Every entry is keyed the way the kernel identifies it (a route by destination and metric,
// a neighbour by IP on weft's device, an FDB entry by MAC), so that desired and observed
// states are diffed with Map lookups, and a changed MAC or public IP shows up as the same key
// with a different value (a replace) rather than a delete plus an add.
//
// One model serves either address family: a backend is IPv4 or IPv6 (a dual-stack host runs
// one of each), and its entries, keys and batch lines are those of its family only.
import { Ipv6, netOf, parseMac, type IpAddr, type IpNet } from '../alloc/cidr.js';
import type { BackendSettings, Peer, Uplink } from './types.js';

/**
 * The route protocol number weft installs its routes with: 119 (0x77, ASCII "w"), unused by
 * iproute2's rt_protos and by the common routing daemons. Routes via the uplink are only ever
 * deleted when they carry it, so an operator's routes there are never touched.
 */
export const WEFT_ROUTE_PROTO = 119;

/**
 * The metric of weft's IPv6 routes: what the kernel gives an IPv6 route added without one
 * (IP6_RT_PRIO_USER). weft says it explicitly, so a desired route and the same route read back
 * have one key. IPv4 routes keep metric 0, which the kernel reports by leaving it out.
 */
export const IPV6_ROUTE_METRIC = 1024;

export type Family = 4 | 6;

declare const macBrand: unique symbol;
declare const linkBrand: unique symbol;
/** A MAC in canonical lowercase colon form, validated. */
export type Mac = string & { readonly [macBrand]: true };
/** A network interface name, validated (safe as one batch token). */
export type LinkName = string & { readonly [linkBrand]: true };

export const ZERO_MAC = '00:00:00:00:00:00' as Mac;

/** A unicast MAC, or undefined. */
export function toMac(text: unknown): Mac | undefined {
  return parseMac(text) as Mac | undefined;
}

/** A MAC as it may appear in a vxlan FDB: unicast, or all-zero (the flood entry). */
export function toFdbMac(text: unknown): Mac | undefined {
  if (typeof text === 'string' && text.toLowerCase() === ZERO_MAC) return ZERO_MAC;
  return toMac(text);
}

const LINK = /^[A-Za-z0-9_.@-]{1,15}$/;

export function toLinkName(text: unknown): LinkName | undefined {
  if (typeof text !== 'string' || !LINK.test(text) || text === '.' || text === '..') return undefined;
  return text as LinkName;
}

export function vxlanDeviceName(vni: number): LinkName {
  return toLinkName(`flannel.${vni}`)!;
}

/** flanneld's name for the IPv6 vxlan device; undefined when it would not fit (VNI above 9999). */
export function vxlanV6DeviceName(vni: number): LinkName | undefined {
  return toLinkName(`flannel-v6.${vni}`);
}

/** The vxlan device of a family for a VNI; undefined when the name would be too long. */
export function vxlanDeviceNameFor(family: Family, vni: number): LinkName | undefined {
  return family === 6 ? vxlanV6DeviceName(vni) : toLinkName(`flannel.${vni}`);
}

export interface RouteEntry {
  dst: IpNet;
  /** Undefined only for observed device routes without a gateway (never desired). */
  via: IpAddr | undefined;
  dev: LinkName;
  onlink: boolean;
  /** Route protocol number; undefined for a protocol name we do not know (never ours). */
  proto: number | undefined;
  metric: number;
}

export interface NeighEntry {
  ip: IpAddr;
  mac: Mac;
  dev: LinkName;
  permanent: boolean;
}

export interface FdbEntry {
  mac: Mac;
  dst: IpAddr;
  dev: LinkName;
  permanent: boolean;
  /** False when the entry carries a per-entry VNI, port or via that weft never sets. */
  plain: boolean;
}

/**
 * A route in the main table that weft did not create (not on its vxlan device, not its
 * protocol on the uplink): the operator's, the kernel's prefix route of an address, another
 * network's agent's. `ip route replace` and NLM_F_REPLACE both replace by destination and
 * metric, so weft never installs a route to a destination one of these holds.
 */
export interface ForeignRoute {
  dst: IpNet;
  dev: string | undefined;
  proto: number | undefined;
  /** unicast, blackhole, unreachable, ... */
  type: string;
}

export interface KernelState {
  routes: Map<string, RouteEntry>;
  neighs: Map<string, NeighEntry>;
  fdb: Map<string, FdbEntry>;
  /** Observed only: routes weft does not own, by destination (`dst.toString()`). */
  foreign?: Map<string, ForeignRoute>;
}

export function emptyState(): KernelState {
  return { routes: new Map(), neighs: new Map(), fdb: new Map() };
}

export function routeKey(dst: IpNet, metric: number): string {
  return metric === 0 ? dst.toString() : `${dst.toString()} metric ${metric}`;
}

export function neighKey(ip: IpAddr): string {
  return ip.toString();
}

export function fdbKey(mac: Mac): string {
  return mac;
}

export function routeEqual(a: RouteEntry, b: RouteEntry): boolean {
  return (
    a.dst.equals(b.dst) &&
    (a.via === undefined ? b.via === undefined : b.via !== undefined && a.via.equals(b.via)) &&
    a.dev === b.dev &&
    a.onlink === b.onlink &&
    a.proto === b.proto &&
    a.metric === b.metric
  );
}

export function neighEqual(a: NeighEntry, b: NeighEntry): boolean {
  return a.ip.equals(b.ip) && a.mac === b.mac && a.dev === b.dev && a.permanent === b.permanent;
}

export function fdbEqual(a: FdbEntry, b: FdbEntry): boolean {
  return a.mac === b.mac && a.dst.equals(b.dst) && a.dev === b.dev && a.permanent === b.permanent && a.plain === b.plain;
}

export interface ModelInput {
  settings: BackendSettings;
  uplink: Uplink;
  /** The uplink's name, validated. */
  uplinkDev: LinkName;
  /** The vxlan device (vxlan backend only). */
  vxlanDev?: LinkName;
  ownSubnet: IpNet;
  peers: Iterable<Peer>;
}

export interface Skipped {
  key: string;
  reason: string;
}

export interface Desired {
  state: KernelState;
  /** Peers left out, with why (own subnet and other backends' peers are not listed). */
  skipped: Skipped[];
}

/**
 * The entries one peer asks for, with their keys, before any conflict with another peer. One
 * flat object of one shape (a host-gw peer's neighbour and FDB fields are undefined): the
 * desired model keeps one per peer for as long as the lease lives, and [key, entry] pairs
 * were three arrays more per peer (~190 bytes of an idle agent's heap, docs/performance.md).
 */
export interface PeerEntries {
  routeKey: string;
  route: RouteEntry;
  neighKey: string | undefined;
  neigh: NeighEntry | undefined;
  fdbKey: string | undefined;
  fdb: FdbEntry | undefined;
}

/** What a peer contributes: entries, a reason it is left out, or nothing (not ours to route). */
export type Verdict = PeerEntries | { skip: string } | undefined;

/** The per-host constants the model needs, computed once per (settings, uplink, own subnet). */
export interface ModelContext {
  settings: BackendSettings;
  uplink: Uplink;
  uplinkDev: LinkName;
  vxlanDev?: LinkName;
  ownSubnet: IpNet;
  uplinkNet: IpNet;
  family: Family;
  /** The metric weft's routes carry in this family. */
  metric: number;
}

export function modelContext(input: Omit<ModelInput, 'peers'>): ModelContext {
  const { settings, uplink, uplinkDev, vxlanDev, ownSubnet } = input;
  const family = settings.family ?? 4;
  return {
    settings,
    uplink,
    uplinkDev,
    ...(vxlanDev ? { vxlanDev } : {}),
    ownSubnet,
    uplinkNet: netOf(uplink.address, uplink.prefixLength),
    family,
    metric: family === 6 ? IPV6_ROUTE_METRIC : 0,
  };
}

const V6_MULTICAST = 0xffn; // ff00::/8, the top 8 bits
const V6_LINK_LOCAL = 0x3fan; // fe80::/10, the top 10 bits

/**
 * Why an IPv6 address cannot be a peer's gateway or VXLAN endpoint, or undefined. The
 * unspecified and loopback addresses, multicast and link-local (meaningless in a lease, which
 * names no zone) would each make the kernel do something other than reach a remote host.
 */
export function unusableIpv6(ip: Ipv6): string | undefined {
  const v = ip.value;
  if (v === 0n) return 'the unspecified address';
  if (v === 1n) return 'the loopback address';
  if (v >> 120n === V6_MULTICAST) return 'a multicast address';
  if (isLinkLocal6(ip)) return 'a link-local address';
  return undefined;
}

export function isLinkLocal6(ip: Ipv6): boolean {
  return ip.value >> 118n === V6_LINK_LOCAL;
}

/**
 * One peer on its own: what it would install on this host. Depends on nothing but the peer
 * and the context, so it can be computed once per lease value and reused across events.
 */
export function peerVerdict(ctx: ModelContext, peer: Peer): Verdict {
  const { settings, uplink, uplinkDev, vxlanDev, ownSubnet, uplinkNet, family, metric } = ctx;
  if (peer.backendType !== settings.type) return undefined;
  if (peer.subnet.family !== family || peer.publicIP.family !== family) {
    return { skip: `subnet ${peer.subnet} and public IP ${peer.publicIP} are not both IPv${family}` };
  }
  if (peer.subnet.equals(ownSubnet)) return undefined;
  if (family === 6) {
    const gw = unusableIpv6(peer.subnet.network as Ipv6);
    if (gw) return { skip: `subnet ${peer.subnet} starts at ${gw}` };
    const pub = unusableIpv6(peer.publicIP as Ipv6);
    if (pub) return { skip: `public IP ${peer.publicIP} is ${pub}` };
  }
  if (peer.subnet.overlaps(ownSubnet)) return { skip: `subnet ${peer.subnet} overlaps this host's ${ownSubnet}` };
  if (settings.network && !settings.network.contains(peer.subnet)) {
    return { skip: `subnet ${peer.subnet} is outside the network ${settings.network}` };
  }
  if (peer.publicIP.equals(uplink.address)) return { skip: `public IP ${peer.publicIP} is this host's own` };
  const rkey = routeKey(peer.subnet, metric);
  const direct = uplinkNet.contains(peer.publicIP);

  if (settings.type === 'host-gw' || (settings.directRouting && direct)) {
    if (!direct) return { skip: `public IP ${peer.publicIP} is not on-link on ${uplink.name} (${uplinkNet})` };
    const route: RouteEntry = { dst: peer.subnet, via: peer.publicIP, dev: uplinkDev, onlink: false, proto: WEFT_ROUTE_PROTO, metric };
    return { routeKey: rkey, route, neighKey: undefined, neigh: undefined, fdbKey: undefined, fdb: undefined };
  }

  if (!vxlanDev) return undefined;
  const mac = toMac(peer.vtepMAC);
  if (!mac) return { skip: 'vxlan lease without a usable VtepMAC' };
  const gw = peer.subnet.network;
  return {
    routeKey: rkey,
    route: { dst: peer.subnet, via: gw, dev: vxlanDev, onlink: true, proto: WEFT_ROUTE_PROTO, metric },
    neighKey: neighKey(gw),
    neigh: { ip: gw, mac, dev: vxlanDev, permanent: true },
    fdbKey: fdbKey(mac),
    fdb: { mac, dst: peer.publicIP, dev: vxlanDev, permanent: true, plain: true },
  };
}

/**
 * Why a peer's entries cannot go in next to those already in state (another lease holds the
 * same subnet, VTEP MAC or gateway address), or undefined when they can.
 */
export function conflictOf(state: KernelState, e: PeerEntries, owners: { mac: (mac: string) => string | undefined }): string | undefined {
  if (state.routes.has(e.routeKey)) return `subnet ${e.route.dst} is already routed for another lease`;
  if (e.fdbKey !== undefined && state.fdb.has(e.fdbKey)) return `VtepMAC ${e.fdb!.mac} is already used by ${owners.mac(e.fdbKey) ?? 'another lease'}`;
  if (e.neighKey !== undefined && state.neighs.has(e.neighKey)) return `neighbour ${e.neigh!.ip} is already used by another lease`;
  return undefined;
}

export function addEntries(state: KernelState, e: PeerEntries): void {
  state.routes.set(e.routeKey, e.route);
  if (e.neighKey !== undefined) state.neighs.set(e.neighKey, e.neigh!);
  if (e.fdbKey !== undefined) state.fdb.set(e.fdbKey, e.fdb!);
}

/**
 * The kernel entries that the given peers call for on this host, computed from scratch: the
 * reference the incremental DesiredPeers is tested against. Conflicts go to the peer with the
 * lower order: its `since` (the lease's create revision), else its place in the list.
 */
export function desiredState(input: ModelInput): Desired {
  const ctx = modelContext(input);
  const state = emptyState();
  const skipped: Skipped[] = [];
  const macOwner = new Map<string, string>();
  const owners = { mac: (mac: string) => macOwner.get(mac) };
  const ordered = [...input.peers].map((peer, i) => ({ peer, order: peer.since ?? i + 1 }));
  ordered.sort((a, b) => a.order - b.order || (a.peer.key < b.peer.key ? -1 : a.peer.key > b.peer.key ? 1 : 0));
  for (const { peer } of ordered) {
    const v = peerVerdict(ctx, peer);
    if (!v) continue;
    if ('skip' in v) {
      skipped.push({ key: peer.key, reason: v.skip });
      continue;
    }
    const conflict = conflictOf(state, v, owners);
    if (conflict) {
      skipped.push({ key: peer.key, reason: conflict });
      continue;
    }
    addEntries(state, v);
    if (v.fdbKey !== undefined) macOwner.set(v.fdbKey, peer.key);
  }
  return { state, skipped };
}
