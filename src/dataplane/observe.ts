// Reading kernel state back, restricted to what weft owns: everything on its vxlan device,
// and on the uplink only routes carrying weft's protocol number. The parsers are pure and
// validate every field; an entry that does not parse is left alone (never deleted, since we
// could not render it safely anyway).
import { Cidr, Ipv4 } from '../alloc/cidr.js';
import type { IpRunner } from './ipcmd.js';
import {
  emptyState,
  fdbKey,
  neighKey,
  routeKey,
  toFdbMac,
  toLinkName,
  toMac,
  WEFT_ROUTE_PROTO,
  type FdbEntry,
  type KernelState,
  type LinkName,
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

function parseDst(v: unknown): Cidr | undefined {
  if (v === 'default') return Cidr.parse('0.0.0.0/0');
  if (typeof v !== 'string') return undefined;
  return Cidr.parse(v.includes('/') ? v : `${v}/32`, { strict: true });
}

function parseUint(v: unknown, max: number): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 0 && n <= max ? n : undefined;
}

/** One route from `ip -N -4 -json route show dev DEV`, or undefined when not a unicast route we can name. */
export function parseRoute(raw: unknown, dev: LinkName): RouteEntry | undefined {
  if (!isObject(raw)) return undefined;
  if (raw.type !== undefined && raw.type !== 'unicast') return undefined;
  const dst = parseDst(raw.dst);
  if (!dst) return undefined;
  let via: Ipv4 | undefined;
  if (raw.gateway !== undefined) {
    via = Ipv4.parse(raw.gateway);
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
  opts: { onlyWeft: boolean; scope?: Cidr | undefined },
  into: Map<string, RouteEntry>,
): void {
  for (const item of asArray(raw)) {
    const r = parseRoute(item, dev);
    if (!r) continue;
    if (opts.scope && !opts.scope.contains(r.dst)) continue;
    if (opts.onlyWeft ? r.proto !== WEFT_ROUTE_PROTO : r.proto === RTPROT_KERNEL) continue;
    let key = routeKey(r.dst, r.metric);
    // Two routes under one key (appended routes, or the same prefix on both devices): the
    // extra one gets a key no desired entry has, so the planner deletes it.
    for (let n = 1; into.has(key); n++) key = `${routeKey(r.dst, r.metric)} dev ${dev} #${n}`;
    into.set(key, r);
  }
}

/** Permanent IPv4 neighbours from `ip -4 -json neigh show dev DEV`; others belong to the kernel. */
export function parseNeighs(raw: unknown, dev: LinkName, into: Map<string, NeighEntry>): void {
  for (const item of asArray(raw)) {
    if (!isObject(item)) continue;
    const ip = Ipv4.parse(item.dst);
    const mac = toMac(item.lladdr);
    if (!ip || !mac) continue;
    if (!asArray(item.state).includes('PERMANENT')) continue;
    into.set(neighKey(ip), { ip, mac, dev, permanent: true });
  }
}

/** Unicast (and all-zero) remote entries from `bridge -json fdb show dev DEV`. */
export function parseFdb(raw: unknown, dev: LinkName, into: Map<string, FdbEntry>): void {
  for (const item of asArray(raw)) {
    if (!isObject(item)) continue;
    const mac: Mac | undefined = toFdbMac(item.mac);
    const dst = Ipv4.parse(item.dst);
    if (!mac || !dst) continue;
    const flags = asArray(item.flags);
    // Entries of a bridge the device is enslaved to are the bridge's, not ours.
    if (!flags.includes('self') || item.master !== undefined) continue;
    const plain = item.vni === undefined && item.port === undefined && item.via === undefined && item.src_vni === undefined;
    const entry: FdbEntry = { mac, dst, dev, permanent: item.state === 'permanent', plain };
    let key = fdbKey(mac);
    if (into.has(key)) key = `${mac} ${dst.toString()}`;
    if (into.has(key)) continue;
    into.set(key, entry);
  }
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
  uplinkScope?: Cidr;
}

/** Dumps what weft owns, in parallel (at most four short processes). */
export async function observe(runner: IpRunner, targets: ObserveTargets): Promise<KernelState> {
  const state = emptyState();
  const { vxlanDev, uplinkDev } = targets;
  const routeDump = (dev: LinkName) => runner.json('ip', ['-N', '-4', 'route', 'show', 'table', 'main', 'dev', dev]);
  const [vxRoutes, upRoutes, neighs, fdb] = await Promise.all([
    vxlanDev ? routeDump(vxlanDev) : [],
    uplinkDev ? routeDump(uplinkDev) : [],
    vxlanDev ? runner.json('ip', ['-4', 'neigh', 'show', 'dev', vxlanDev]) : [],
    vxlanDev ? runner.json('bridge', ['fdb', 'show', 'dev', vxlanDev]) : [],
  ]);
  if (vxlanDev) parseRoutes(vxRoutes, vxlanDev, { onlyWeft: false }, state.routes);
  if (uplinkDev) parseRoutes(upRoutes, uplinkDev, { onlyWeft: true, scope: targets.uplinkScope }, state.routes);
  if (vxlanDev) {
    parseNeighs(neighs, vxlanDev, state.neighs);
    parseFdb(fdb, vxlanDev, state.fdb);
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
  local: Ipv4 | undefined;
  link: LinkName | undefined;
  port: number | undefined;
  learning: boolean | undefined;
  gbp: boolean;
  /** IPv4 addresses on the device (host bits kept: `addr del` needs them). */
  addresses: { ip: Ipv4; prefix: number }[];
}

export function parseDevice(raw: unknown): DeviceInfo | undefined {
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
    if (!isObject(a) || a.family !== 'inet') continue;
    const ip = Ipv4.parse(a.local);
    const prefix = parseUint(a.prefixlen, 32);
    if (!ip || prefix === undefined) continue;
    addresses.push({ ip, prefix });
  }
  return {
    name,
    mac,
    mtu,
    up: asArray(item.flags).includes('UP'),
    kind: typeof info.info_kind === 'string' ? info.info_kind : undefined,
    vni: parseUint(data.id, 0xffffff),
    local: Ipv4.parse(data.local),
    link: toLinkName(data.link),
    port: parseUint(data.port, 65535),
    learning: typeof data.learning === 'boolean' ? data.learning : undefined,
    gbp: data.gbp === true,
    addresses,
  };
}
