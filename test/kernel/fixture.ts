// A one-host kernel fixture: a namespace with an uplink eth0 (192.0.2.1/24 and, for the IPv6
// and dual stacks, fd00:1::1/64; one end of a veth pair whose other end stays in the same
// namespace; the dummy link type is not available), and helpers that read back what weft
// programmed as short sorted strings.
import { afterEach } from 'vitest';
import { createBackend } from '../../src/dataplane/index.js';
import type { Backend, BackendSettings, Uplink } from '../../src/dataplane/types.js';
import { createLogger, type Logger } from '../../src/log.js';
import { setSysctl } from '../../src/testbed/netns.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';
import { cidr, ip, ip6, net6 } from '../helpers/peers.js';

export { cidr, ip, ip6, net6, vxPeer, vxPeer6 } from '../helpers/peers.js';

export const OWN = cidr('10.5.1.0/24');
export const PUBLIC_IP = ip('192.0.2.1');
export const VXLAN: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: cidr('10.5.0.0/16') };

export const OWN6 = net6('fd00:5:0:1::/64');
export const PUBLIC_IP6 = ip6('fd00:1::1');
export const VXLAN6: BackendSettings = { ...VXLAN, family: 6, network: net6('fd00:5::/48') };

/** Which addresses the uplink has: IPv4 only (as always), IPv6 only, or both. */
export type Stack = 'ipv4' | 'ipv6' | 'dual';

/**
 * Turns IPv6 on in a namespace, with forwarding and without duplicate address detection, through
 * the namespace's own sysctls (links created afterwards inherit the defaults).
 */
export async function enableIpv6(ns: string): Promise<void> {
  for (const conf of ['all', 'default']) {
    await setSysctl(ns, `net.ipv6.conf.${conf}.disable_ipv6`, '0');
    await setSysctl(ns, `net.ipv6.conf.${conf}.accept_dad`, '0');
    await setSysctl(ns, `net.ipv6.conf.${conf}.forwarding`, '1');
  }
}

export interface Host {
  ns: TestNetns;
  uplink: Uplink;
  /** The uplink as an IPv6 backend sees it (ipv6 and dual stacks). */
  uplink6: Uplink;
  logs: string[];
  logger: Logger;
  backend(settings?: BackendSettings): Backend;
  /** An IPv6 backend on the uplink's IPv6 address. */
  backend6(settings?: BackendSettings): Backend;
  /** Routes of a family on a device as "dst via gw proto P [onlink]", sorted. */
  routes(dev: string, family?: 4 | 6): Promise<string[]>;
  /** Neighbours of a family on a device as "ip mac STATE", sorted. */
  neighs(dev: string, family?: 4 | 6): Promise<string[]>;
  /** FDB entries on a device as "mac dst state", sorted. */
  fdb(dev: string): Promise<string[]>;
  link(dev: string): Promise<LinkJson | undefined>;
}

export interface LinkJson {
  address: string;
  mtu: number;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export async function createHost(role: string, opts: { stack?: Stack } = {}): Promise<Host> {
  const stack = opts.stack ?? 'ipv4';
  const ns = await createTestNetns(role);
  try {
    if (stack !== 'ipv4') await enableIpv6(ns.name);
    await ns.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    if (stack !== 'ipv6') await ns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    if (stack !== 'ipv4') await ns.ip(['addr', 'add', 'fd00:1::1/64', 'dev', 'eth0', 'nodad']);
    await ns.ip(['link', 'set', 'eth0', 'up']);
    await ns.ip(['link', 'set', 'eth0p', 'up']);
  } catch (err) {
    await ns.delete();
    throw err;
  }
  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', format: 'text', write: (l) => logs.push(l) });
  const uplink: Uplink = { name: 'eth0', index: 0, mtu: 1500, address: PUBLIC_IP, prefixLength: 24 };
  const uplink6: Uplink = { name: 'eth0', index: 0, mtu: 1500, address: PUBLIC_IP6, prefixLength: 64 };
  const list = async (args: string[], bridge = false) =>
    (bridge ? await ns.bridgeJson<Record<string, unknown>[]>(args) : await ns.ipJson<Record<string, unknown>[]>(args));
  return {
    ns,
    uplink,
    uplink6,
    logs,
    logger,
    backend: (settings = VXLAN) => createBackend(settings, uplink, PUBLIC_IP, ns.runner, logger),
    backend6: (settings = VXLAN6) => createBackend(settings, uplink6, PUBLIC_IP6, ns.runner, logger),
    routes: async (dev, family = 4) =>
      (await list(['-N', `-${family}`, 'route', 'show', 'dev', dev]))
        .filter((r) => r.protocol !== '2')
        .map((r) =>
          [r.dst, 'via', r.gateway, 'proto', r.protocol ?? '3', ...((r.flags as string[]).includes('onlink') ? ['onlink'] : [])].join(' '),
        )
        .sort(),
    neighs: async (dev, family = 4) =>
      (await list([`-${family}`, 'neigh', 'show', 'dev', dev]))
        .filter((n) => family === 4 || !String(n.dst).startsWith('fe80:'))
        .map((n) => `${n.dst} ${n.lladdr} ${(n.state as string[]).join(',')}`)
        .sort(),
    fdb: async (dev) =>
      (await list(['fdb', 'show', 'dev', dev], true))
        .filter((f) => f.dst !== undefined)
        .map((f) => `${f.mac} ${f.dst} ${f.state}`)
        .sort(),
    link: async (dev) => {
      // Not through ns.runner: tests count that runner's processes.
      const text = await ns.ip(['-details', '-json', 'addr', 'show', 'dev', dev]).catch(() => undefined);
      return text === undefined ? undefined : (JSON.parse(text) as LinkJson[])[0];
    },
  };
}

/**
 * Hosts for the calling test file: host(role) creates one, and every host a test created is
 * deleted after it, whether it passed or failed.
 */
export function useHosts(defaultStack: Stack = 'ipv4'): (role: string, stack?: Stack) => Promise<Host> {
  const hosts: Host[] = [];
  afterEach(async () => {
    for (const h of hosts.splice(0)) await h.ns.delete();
  });
  return async (role, stack = defaultStack) => {
    const h = await createHost(role, { stack });
    hosts.push(h);
    return h;
  };
}

/** The entries vxPeer(n) calls for, as Host's readers print them. */
export function expectedVx(ns: number[], macs: Record<number, string> = {}, ips: Record<number, string> = {}) {
  const mac = (n: number) => macs[n] ?? `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
  return {
    routes: ns.map((n) => `10.5.${n}.0/24 via 10.5.${n}.0 proto 119 onlink`).sort(),
    neighs: ns.map((n) => `10.5.${n}.0 ${mac(n)} PERMANENT`).sort(),
    fdb: ns.map((n) => `${mac(n)} ${ips[n] ?? `192.0.2.${n}`} permanent`).sort(),
  };
}

export async function vxState(h: Host) {
  return { routes: await h.routes('flannel.1'), neighs: await h.neighs('flannel.1'), fdb: await h.fdb('flannel.1') };
}

/** The entries vxPeer6(n) calls for, as Host's readers print them. */
export function expectedVx6(ns: number[], macs: Record<number, string> = {}, ips: Record<number, string> = {}) {
  const mac = (n: number) => macs[n] ?? `02:00:00:00:06:${n.toString(16).padStart(2, '0')}`;
  return {
    routes: ns.map((n) => `fd00:5:0:${n}::/64 via fd00:5:0:${n}:: proto 119 onlink`).sort(),
    neighs: ns.map((n) => `fd00:5:0:${n}:: ${mac(n)} PERMANENT`).sort(),
    fdb: ns.map((n) => `${mac(n)} ${ips[n] ?? `fd00:1::${n}`} permanent`).sort(),
  };
}

export async function vxState6(h: Host) {
  return { routes: await h.routes('flannel-v6.1', 6), neighs: await h.neighs('flannel-v6.1', 6), fdb: await h.fdb('flannel-v6.1') };
}
