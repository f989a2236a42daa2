// Reading kernel state back, restricted to what weft owns: everything on its vxlan device,
// and on the uplink only routes carrying weft's protocol number. The parsers are pure and
// validate every field; an entry that does not parse is left alone (never deleted, since we
// could not render it safely anyway). Each read is of one address family, the backend's: an
// IPv6 backend reads `ip -6` dumps and FDB entries whose remote is an IPv6 address.
import { Cidr, Cidr6, Ipv4, Ipv6, type IpAddr, type IpNet } from '../alloc/cidr.js';
import type { IpRunner } from './ipcmd.js';
import {
  emptyState,
  fdbKey,
  isLinkLocal6,
  neighKey,
  routeKey,
  toFdbMac,
  toLinkName,
  toMac,
  WEFT_ROUTE_PROTO,
  type FdbEntry,
  type ForeignRoute,
  type KernelState,
  type LinkName,
  type Family,
  type Mac,
  type NeighEntry,
  type RouteEntry,
} from './model.js';

const RTPROT_KERNEL = 2;
/** iproute2 omits the protocol when it is "boot" (3). */
const RTPROT_BOOT = 3;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function parseDst(v: unknown, family: Family): IpNet | undefined {
  if (family === 6) {
    if (v === 'default') return Cidr6.parse('::/0');
    if (typeof v !== 'string') return undefined;
    return Cidr6.parse(v.includes('/') ? v : `${v}/128`, { strict: true });
  }
  if (v === 'default') return Cidr.parse('0.0.0.0/0');
  if (typeof v !== 'string') return undefined;
  return Cidr.parse(v.includes('/') ? v : `${v}/32`, { strict: true });
}

/** An address of the given family, or undefined (an address of the other family included). */
export function parseAddr(v: unknown, family: Family): IpAddr | undefined {
  return family === 6 ? Ipv6.parse(v) : Ipv4.parse(v);
}

function parseUint(v: unknown, max: number): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= max ? n : undefined;
}

/**
 * One route from `ip -N -4|-6 -json route show dev DEV`, or undefined when not a unicast route
 * of the family that we can name.
 */
export function parseRoute(raw: unknown, dev: LinkName, family: Family = 4): RouteEntry | undefined {
  if (!isObject(raw)) return undefined;
  if (raw.type !== undefined && raw.type !== 'unicast') return undefined;
  const dst = parseDst(raw.dst, family);
  if (!dst) return undefined;
  let via: IpAddr | undefined;
  if (raw.gateway !== undefined) {
    via = parseAddr(raw.gateway, family);
    if (!via) return undefined;
  }
  const proto = raw.protocol === undefined ? RTPROT_BOOT : parseUint(raw.protocol, 255);
  const metric = raw.metric === undefined ? 0 : parseUint(raw.metric, 0xffffffff);
  if (metric === undefined) return undefined;
  const flags = asArray(raw.flags);
  return { dst, via, dev, onlink: flags.includes('onlink'), proto, metric };
}

/**
 * Routes weft owns on a device. `onlyWeft` keeps only routes with weft's protocol (the uplink,
 * shared with the operator); otherwise every route except the kernel's own (from addresses)
 * counts (weft's vxlan device).
 */
export function parseRoutes(
  raw: unknown,
  dev: LinkName,
  opts: RouteOwnership,
  into: Map<string, RouteEntry>,
): void {
  for (const item of asArray(raw)) {
    const r = parseRoute(item, dev, opts.family);
    if (r && isOwnedRoute(r, opts)) putRoute(into, r);
  }
}

export interface RouteOwnership {
  onlyWeft: boolean;
  scope?: IpNet | undefined;
  family?: Family;
}

/** Whether a route on a device is weft's to judge (same rule for dumps and notifications). */
export function isOwnedRoute(r: RouteEntry, opts: RouteOwnership): boolean {
  if (opts.scope && !opts.scope.contains(r.dst)) return false;
  return opts.onlyWeft ? r.proto === WEFT_ROUTE_PROTO : r.proto !== RTPROT_KERNEL;
}

/** Adds an owned route under its key. */
export function putRoute(into: Map<string, RouteEntry>, r: RouteEntry): void {
  let key = routeKey(r.dst, r.metric);
  // Two routes under one key (appended routes, or the same prefix on both devices): the
  // extra one gets a key no desired entry has, so the planner deletes it.
  for (let n = 1; into.has(key); n++) key = `${routeKey(r.dst, r.metric)} dev ${r.dev} #${n}`;
  into.set(key, r);
}

/** Permanent neighbours from `ip -4|-6 -json neigh show dev DEV`; others belong to the kernel. */
export function parseNeighs(raw: unknown, dev: LinkName, into: Map<string, NeighEntry>, family: Family = 4): void {
  for (const item of asArray(raw)) {
    if (!isObject(item)) continue;
    const ip = parseAddr(item.dst, family);
    const mac = toMac(item.lladdr);
    if (!ip || !mac) continue;
    if (!asArray(item.state).includes('PERMANENT')) continue;
    into.set(neighKey(ip), { ip, mac, dev, permanent: true });
  }
}

/**
 * Unicast (and all-zero) remote entries from `bridge -json fdb show dev DEV` whose remote is
 * an address of the family (the device's underlay).
 */
export function parseFdb(raw: unknown, dev: LinkName, into: Map<string, FdbEntry>, family: Family = 4): void {
  for (const item of asArray(raw)) {
    if (!isObject(item)) continue;
    const mac: Mac | undefined = toFdbMac(item.mac);
    const dst = parseAddr(item.dst, family);
    if (!mac || !dst) continue;
    const flags = asArray(item.flags);
    // Entries of a bridge the device is enslaved to are the bridge's, not ours.
    if (!flags.includes('self') || item.master !== undefined) continue;
    const plain = item.vni === undefined && item.port === undefined && item.via === undefined && item.src_vni === undefined;
    putFdb(into, { mac, dst, dev, permanent: item.state === 'permanent', plain });
  }
}

/** Adds an FDB entry under its MAC (a second remote for one MAC gets a key of its own). */
export function putFdb(into: Map<string, FdbEntry>, entry: FdbEntry): void {
  let key = fdbKey(entry.mac);
  if (into.has(key)) key = `${entry.mac} ${entry.dst.toString()}`;
  if (into.has(key)) return;
  into.set(key, entry);
}

/**
 * Where a kernel dump's entries go as they are decoded: a KernelState (stateSink), or the
 * kernel tables' dataplane views, compared in place (planner.ts tablesSink). Entries come in
 * the kernel's order; keys are the sink's business (putRoute/putFdb's rules for a second
 * entry under one key).
 */
export interface KernelSink {
  /** A route weft owns. */
  route(r: RouteEntry): void;
  /** A permanent neighbour on weft's vxlan device. */
  neigh(n: NeighEntry): void;
  /** An FDB entry of weft's vxlan device with a remote of the family. */
  fdb(f: FdbEntry): void;
  /** A main-table route of the family that is not weft's (its dev may be filled in after the dump). */
  foreign(f: ForeignRoute): void;
}

/** A sink that fills a KernelState, foreign routes included. */
export function stateSink(state: KernelState): KernelSink {
  const foreign = (state.foreign ??= new Map());
  return {
    route: (r) => putRoute(state.routes, r),
    neigh: (n) => void state.neighs.set(neighKey(n.ip), n),
    fdb: (f) => putFdb(state.fdb, f),
    foreign: (f) => void foreign.set(f.dst.toString(), f),
  };
}

/** Hands a dumped state's entries to a sink, in the state's order. */
export function feedSink(state: KernelState, sink: KernelSink): void {
  for (const r of state.routes.values()) sink.route(r);
  for (const n of state.neighs.values()) sink.neigh(n);
  for (const f of state.fdb.values()) sink.fdb(f);
  for (const f of state.foreign?.values() ?? []) sink.foreign(f);
}

export interface ObserveTargets {
  /** weft's vxlan device: routes, neighbours and FDB entries on it are all weft's. */
  vxlanDev?: LinkName;
  /** The uplink: only routes with weft's protocol are read. Omit when weft routes nothing there. */
  uplinkDev?: LinkName;
  /**
   * The overlay network: weft-protocol routes on the uplink outside it belong to another
   * network's agent on this host, and are not ours to judge.
   */
  uplinkScope?: IpNet;
  /** The address family to read; 4 when left out. */
  family?: Family;
}

/**
 * Splits a dump of the family's main table (`ip -N -4|-6 -json route show table main`) into
 * the routes weft owns (as parseRoutes: on its vxlan device, or its protocol on the uplink
 * within the network) and every other route by destination (state.foreign): the planner
 * never replaces a route to a destination one of those holds.
 */
export function parseRouteTable(raw: unknown, targets: ObserveTargets, state: KernelState): void {
  const family = targets.family ?? 4;
  const foreign = (state.foreign ??= new Map());
  for (const item of asArray(raw)) {
    if (!isObject(item)) continue;
    const dev = toLinkName(item.dev);
    if (dev !== undefined && dev === targets.vxlanDev) {
      const before = state.routes.size;
      parseRoutes([item], dev, { onlyWeft: false, family }, state.routes);
      if (state.routes.size > before) continue;
    } else if (dev !== undefined && dev === targets.uplinkDev) {
      const before = state.routes.size;
      parseRoutes([item], dev, { onlyWeft: true, scope: targets.uplinkScope, family }, state.routes);
      if (state.routes.size > before) continue;
    }
    const dst = parseDst(item.dst, family);
    if (!dst) continue;
    const proto = item.protocol === undefined ? RTPROT_BOOT : parseUint(item.protocol, 255);
    foreign.set(dst.toString(), { dst, dev: typeof item.dev === 'string' ? item.dev : undefined, proto, type: typeof item.type === 'string' ? item.type : 'unicast' });
  }
}

/** Dumps what weft owns, and the routes it does not, in parallel (at most three short processes). */
export async function observe(runner: IpRunner, targets: ObserveTargets): Promise<KernelState> {
  const state = emptyState();
  const { vxlanDev } = targets;
  const family = targets.family ?? 4;
  const fam = family === 6 ? '-6' : '-4';
  const [routes, neighs, fdb] = await Promise.all([
    runner.json('ip', ['-N', fam, 'route', 'show', 'table', 'main']),
    vxlanDev ? runner.json('ip', [fam, 'neigh', 'show', 'dev', vxlanDev]) : [],
    vxlanDev ? runner.json('bridge', ['fdb', 'show', 'dev', vxlanDev]) : [],
  ]);
  parseRouteTable(routes, targets, state);
  if (vxlanDev) {
    parseNeighs(neighs, vxlanDev, state.neighs, family);
    parseFdb(fdb, vxlanDev, state.fdb, family);
  }
  return state;
}

/** The vxlan device as `ip -details -json addr show dev D` describes it. */
export interface DeviceInfo {
  name: LinkName;
  mac: Mac;
  mtu: number;
  up: boolean;
  kind: string | undefined;
  vni: number | undefined;
  /** `local` (IPv4) or `local6` (IPv6) in iproute2's description. */
  local: IpAddr | undefined;
  link: LinkName | undefined;
  port: number | undefined;
  learning: boolean | undefined;
  gbp: boolean;
  /** The device's alias (weft's owner mark, when weft made or adopted it). */
  alias: string | undefined;
  /**
   * Addresses of the family on the device (host bits kept: `addr del` needs them). For IPv6,
   * link-local ones are left out: the kernel gives every device one, and they are not ours.
   */
  addresses: { ip: IpAddr; prefix: number }[];
}

export function parseDevice(raw: unknown, family: Family = 4): DeviceInfo | undefined {
  const item = asArray(raw)[0];
  if (!isObject(item)) return undefined;
  const name = toLinkName(item.ifname);
  const mac = toMac(item.address);
  const mtu = parseUint(item.mtu, 65535);
  if (!name || !mac || mtu === undefined) return undefined;
  const info = isObject(item.linkinfo) ? item.linkinfo : {};
  const data = isObject(info.info_data) ? info.info_data : {};
  const addresses: DeviceInfo['addresses'] = [];
  for (const a of asArray(item.addr_info)) {
    if (!isObject(a) || a.family !== (family === 6 ? 'inet6' : 'inet')) continue;
    const ip = parseAddr(a.local, family);
    const prefix = parseUint(a.prefixlen, family === 6 ? 128 : 32);
    if (!ip || prefix === undefined) continue;
    if (ip instanceof Ipv6 && isLinkLocal6(ip)) continue;
    addresses.push({ ip, prefix });
  }
  return {
    name,
    mac,
    mtu,
    up: asArray(item.flags).includes('UP'),
    kind: typeof info.info_kind === 'string' ? info.info_kind : undefined,
    vni: parseUint(data.id, 0xffffff),
    local: data.local !== undefined ? parseAddr(data.local, 4) : Ipv6.parse(data.local6),
    link: toLinkName(data.link),
    port: parseUint(data.port, 65535),
    learning: typeof data.learning === 'boolean' ? data.learning : undefined,
    gbp: data.gbp === true,
    alias: typeof item.ifalias === 'string' ? item.ifalias : undefined,
    addresses,
  };
}
