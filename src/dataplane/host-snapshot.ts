// The host's links, addresses and default routes as the agent's interface selection sees them
// (agent/iface.ts), read once at start. Over rtnetlink from the agent's own process when the
// binding loads: the agent's main thread is busy from its spawn to its first bulk chunk, and
// each `ip` process cost it a fork of a large Node process (4-7 ms each in a profile, 3-4 of them)
// plus the `ip` processes' own CPU beside etcd's. Else with `ip -json` processes, as before.
// Both read the same kernel answers and keep the same ones (docs/performance.md).
import { Ipv4, Ipv6, parseIp, type IpAddr } from '../alloc/cidr.js';
import { hostRunner, type IpRunner } from './ipcmd.js';
import { loadNetlink, NetlinkError, NetlinkSocket } from './netlink.js';
import * as rtnl from './rtnl.js';

export interface LinkInfo {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  addresses: { ip: Ipv4; prefixLength: number }[];
  /** Global-scope IPv6 addresses only: a link-local address is never a VTEP's address. */
  addresses6?: { ip: Ipv6; prefixLength: number }[];
}

export interface HostSnapshot {
  links: LinkInfo[];
  defaultRouteDev?: string;
  /** The IPv6 default route's interface, read when the network has IPv6. */
  defaultRouteDev6?: string;
  /** Answer of `ip route get <can-reach>`, when asked. */
  canReach?: { dev: string; src?: IpAddr };
}

export interface HostReadOptions {
  /** Read the IPv6 default route too. */
  ipv6?: boolean;
}

/**
 * The snapshot over netlink when the binding loads (WEFT_KERNEL_CHANNEL=iproute2 says no, as
 * for the kernel channel), else, or when a netlink read fails, from `ip` processes. Silent
 * about the fallback: the kernel channel says once why netlink is unavailable, moments later.
 */
export async function readHostSnapshot(canReach?: string, opts: HostReadOptions = {}): Promise<HostSnapshot> {
  const nl = loadNetlink();
  if ('Raw' in nl) {
    let sock: NetlinkSocket | undefined;
    try {
      sock = new NetlinkSocket(nl.Raw);
      return await readHostOverNetlink(sock, canReach, opts);
    } catch {
      // the `ip` processes below read the same facts
    } finally {
      sock?.close();
    }
  }
  return readHostWithIp(hostRunner, canReach, opts);
}

/**
 * `ip addr show`, `ip [-6] route show default` and `ip route get` as requests on one socket
 * (one dump at a time: the kernel answers a second one on a socket with EBUSY).
 */
export async function readHostOverNetlink(sock: NetlinkSocket, canReach?: string, opts: HostReadOptions = {}): Promise<HostSnapshot> {
  const links: LinkInfo[] = [];
  const byIndex = new Map<number, LinkInfo>();
  await sock.dumpEach(rtnl.dump(rtnl.RTM_GETLINK, 0), (m) => {
    const l = rtnl.decodeLink(m.body);
    if (!l?.name) return;
    const link: LinkInfo = { name: l.name, index: l.index, mtu: l.mtu ?? 1500, up: (l.flags & rtnl.IFF_UP) !== 0, addresses: [], addresses6: [] };
    links.push(link);
    byIndex.set(l.index, link);
  });
  // Both families in one dump; the kernel sends IPv4's first, each in its own order, as `ip` prints them.
  await sock.dumpEach(rtnl.dump(rtnl.RTM_GETADDR, 0), (m) => {
    const a = rtnl.decodeAddr(m.body);
    const link = a && byIndex.get(a.index);
    if (!link) return;
    if (a.ip.family === 4) link.addresses.push({ ip: a.ip, prefixLength: a.prefix });
    else if (a.scope === rtnl.RT_SCOPE_UNIVERSE && (a.flags & rtnl.IFA_F_DADFAILED) === 0) link.addresses6!.push({ ip: a.ip, prefixLength: a.prefix });
  });
  // `ip route show default`: the main table's first route to 0/0 (::/0), its device if it has
  // one (a multipath or blackhole route has none). A host's other routes are skipped undecoded.
  const defaults: { 4?: number | undefined; 6?: number | undefined } = {};
  await sock.dumpEach(rtnl.dump(rtnl.RTM_GETROUTE, opts.ipv6 ? 0 : rtnl.AF_INET), (m) => {
    if (m.body.length < 12 || m.body[1] !== 0) return; // rtm_dst_len
    const r = rtnl.decodeRoute(m.body);
    if (!r || r.table !== rtnl.RT_TABLE_MAIN || r.family in defaults) return;
    defaults[r.family] = r.oif;
  });
  const devOf = (index: number | undefined) => (index === undefined ? undefined : byIndex.get(index)?.name);
  const snapshot: HostSnapshot = { links };
  const dev4 = devOf(defaults[4]);
  const dev6 = opts.ipv6 ? devOf(defaults[6]) : undefined;
  if (dev4) snapshot.defaultRouteDev = dev4;
  if (dev6) snapshot.defaultRouteDev6 = dev6;
  const target = canReach ? parseIp(canReach) : undefined;
  if (target) {
    // No route (an errno) is no answer, as `ip route get` failing is.
    const answer = await sock.request(rtnl.routeGet(target)).catch((err: unknown) => {
      if (err instanceof NetlinkError) return [];
      throw err;
    });
    const r = answer[0]?.type === rtnl.RTM_NEWROUTE ? rtnl.decodeRoute(answer[0].body) : undefined;
    const dev = devOf(r?.oif);
    if (dev) snapshot.canReach = { dev, ...(r?.prefsrc ? { src: r.prefsrc } : {}) };
  }
  return snapshot;
}

interface IpAddrJson {
  ifindex?: number;
  ifname?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string; dadfailed?: boolean }[];
}

/** The same snapshot from `ip -json` processes, run side by side (the fallback). */
export async function readHostWithIp(runner: IpRunner, canReach?: string, opts: HostReadOptions = {}): Promise<HostSnapshot> {
  const none = Promise.resolve([]);
  const json = async <T>(args: string[]) => (await runner.json('ip', args)) as T;
  const [addrs, routes, routes6, got] = await Promise.all([
    json<IpAddrJson[]>(['addr', 'show']),
    json<{ dev?: string }[]>(['route', 'show', 'default']).catch(() => []),
    opts.ipv6 ? json<{ dev?: string }[]>(['-6', 'route', 'show', 'default']).catch(() => []) : none,
    canReach && parseIp(canReach) ? json<{ dev?: string; prefsrc?: string }[]>(['route', 'get', canReach]).catch(() => []) : none,
  ]);
  const links: LinkInfo[] = [];
  for (const l of addrs) {
    if (typeof l.ifname !== 'string' || typeof l.ifindex !== 'number') continue;
    const info = l.addr_info ?? [];
    const addresses = info
      .filter((a) => a.family === 'inet')
      .map((a) => ({ ip: Ipv4.parse(a.local), prefixLength: a.prefixlen ?? 32 }))
      .filter((a): a is { ip: Ipv4; prefixLength: number } => a.ip !== undefined);
    const addresses6 = info
      .filter((a) => a.family === 'inet6' && a.scope === 'global' && !a.dadfailed)
      .map((a) => ({ ip: Ipv6.parse(a.local), prefixLength: a.prefixlen ?? 128 }))
      .filter((a): a is { ip: Ipv6; prefixLength: number } => a.ip !== undefined);
    links.push({ name: l.ifname, index: l.ifindex, mtu: l.mtu ?? 1500, up: (l.flags ?? []).includes('UP'), addresses, addresses6 });
  }
  const snapshot: HostSnapshot = { links };
  if (routes[0]?.dev) snapshot.defaultRouteDev = routes[0].dev;
  if (routes6[0]?.dev) snapshot.defaultRouteDev6 = routes6[0].dev;
  const reach = got[0] as { dev?: string; prefsrc?: string } | undefined;
  if (reach?.dev) {
    const src = parseIp(reach.prefsrc);
    snapshot.canReach = { dev: reach.dev, ...(src ? { src } : {}) };
  }
  return snapshot;
}
