// A one-host kernel fixture: a namespace with an uplink eth0 (192.0.2.1/24, one end of a veth
// pair whose other end stays in the same namespace; the dummy link type is not available), and
// helpers that read back what weft programmed as short sorted strings.
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { createBackend } from '../../src/dataplane/index.js';
import type { Backend, BackendSettings, Peer, Uplink } from '../../src/dataplane/types.js';
import { createLogger, type Logger } from '../../src/log.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';

export const ip = (s: string) => Ipv4.parse(s)!;
export const cidr = (s: string) => Cidr.parse(s, { strict: true })!;

export const OWN = cidr('10.5.1.0/24');
export const PUBLIC_IP = ip('192.0.2.1');
export const VXLAN: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: cidr('10.5.0.0/16') };

export interface Host {
  ns: TestNetns;
  uplink: Uplink;
  logs: string[];
  logger: Logger;
  backend(settings?: BackendSettings): Backend;
  /** Routes on a device as "dst via gw proto P [onlink]", sorted. */
  routes(dev: string): Promise<string[]>;
  /** Neighbours on a device as "ip mac STATE", sorted. */
  neighs(dev: string): Promise<string[]>;
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

export function vxPeer(n: number, over: Partial<Peer> = {}): Peer {
  return {
    key: `10.5.${n}.0-24`,
    subnet: cidr(`10.5.${n}.0/24`),
    publicIP: ip(`192.0.2.${n}`),
    backendType: 'vxlan',
    vtepMAC: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
    vni: 1,
    ...over,
  };
}

export async function createHost(role: string): Promise<Host> {
  const ns = await createTestNetns(role);
  try {
    await ns.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
    await ns.ip(['addr', 'add', '192.0.2.1/24', 'dev', 'eth0']);
    await ns.ip(['link', 'set', 'eth0', 'up']);
    await ns.ip(['link', 'set', 'eth0p', 'up']);
  } catch (err) {
    await ns.delete();
    throw err;
  }
  const logs: string[] = [];
  const logger = createLogger({ level: 'debug', write: (l) => logs.push(l) });
  const uplink: Uplink = { name: 'eth0', index: 0, mtu: 1500, address: PUBLIC_IP, prefixLength: 24 };
  const list = async (args: string[], bridge = false) =>
    (bridge ? await ns.bridgeJson<Record<string, unknown>[]>(args) : await ns.ipJson<Record<string, unknown>[]>(args));
  return {
    ns,
    uplink,
    logs,
    logger,
    backend: (settings = VXLAN) => createBackend(settings, uplink, PUBLIC_IP, ns.runner, logger),
    routes: async (dev) =>
      (await list(['-N', '-4', 'route', 'show', 'dev', dev]))
        .filter((r) => r.protocol !== '2')
        .map((r) =>
          [r.dst, 'via', r.gateway, 'proto', r.protocol ?? '3', ...((r.flags as string[]).includes('onlink') ? ['onlink'] : [])].join(' '),
        )
        .sort(),
    neighs: async (dev) =>
      (await list(['-4', 'neigh', 'show', 'dev', dev])).map((n) => `${n.dst} ${n.lladdr} ${(n.state as string[]).join(',')}`).sort(),
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
