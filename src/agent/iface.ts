// Choosing the uplink the way flanneld does: --iface (name or IP, first found), then
// --iface-regex, then --iface-can-reach, else the default route's interface. The choice is
// a pure function of a snapshot of the host's links; reading the snapshot is the I/O edge.
import { Ipv4 } from '../alloc/cidr.js';
import * as ipcmd from '../dataplane/ipcmd.js';
import type { Uplink4 as Uplink } from '../dataplane/types.js';

export interface LinkInfo {
  name: string;
  index: number;
  mtu: number;
  up: boolean;
  addresses: { ip: Ipv4; prefixLength: number }[];
}

export interface HostSnapshot {
  links: LinkInfo[];
  defaultRouteDev?: string;
  /** Answer of `ip route get <can-reach>`, when asked. */
  canReach?: { dev: string; src?: Ipv4 };
}

export interface SelectionOptions {
  ifaces: string[];
  ifaceRegex: string[];
  ifaceCanReach?: string;
  publicIP?: string;
}

export interface Selection {
  uplink: Uplink & { prefixLength: number };
  publicIP: Ipv4;
  how: string;
}

export class InterfaceError extends Error {
  override readonly name = 'InterfaceError';
}

function withAddress(link: LinkInfo, ip?: Ipv4): Selection['uplink'] | undefined {
  const addr = ip ? link.addresses.find((a) => a.ip.equals(ip)) : link.addresses[0];
  if (!addr) return undefined;
  return { name: link.name, index: link.index, mtu: link.mtu, address: addr.ip, prefixLength: addr.prefixLength };
}

export function selectInterface(opts: SelectionOptions, host: HostSnapshot): Selection {
  const usable = host.links.filter((l) => l.name !== 'lo' && l.addresses.length > 0);
  let uplink: Selection['uplink'] | undefined;
  let how = '';

  if (opts.ifaces.length > 0) {
    for (const want of opts.ifaces) {
      const ip = Ipv4.parse(want);
      const link = ip ? usable.find((l) => l.addresses.some((a) => a.ip.equals(ip))) : usable.find((l) => l.name === want);
      if (link) {
        uplink = withAddress(link, ip);
        how = `--iface ${want}`;
        break;
      }
    }
    if (!uplink) throw new InterfaceError(`none of --iface ${opts.ifaces.join(', ')} exists with an IPv4 address`);
  } else if (opts.ifaceRegex.length > 0) {
    outer: for (const re of opts.ifaceRegex) {
      const rx = new RegExp(re);
      for (const link of usable) {
        for (const a of link.addresses) {
          if (rx.test(a.ip.toString())) {
            uplink = withAddress(link, a.ip);
            how = `--iface-regex ${re} (address)`;
            break outer;
          }
        }
        if (rx.test(link.name)) {
          uplink = withAddress(link);
          how = `--iface-regex ${re} (name)`;
          break outer;
        }
      }
    }
    if (!uplink) throw new InterfaceError(`no interface matches --iface-regex ${opts.ifaceRegex.join(', ')}`);
  } else if (opts.ifaceCanReach) {
    const dev = host.canReach?.dev;
    const link = dev ? usable.find((l) => l.name === dev) : undefined;
    if (!link) throw new InterfaceError(`no interface routes to --iface-can-reach ${opts.ifaceCanReach}`);
    uplink = withAddress(link, host.canReach?.src && link.addresses.some((a) => a.ip.equals(host.canReach!.src!)) ? host.canReach.src : undefined);
    how = `--iface-can-reach ${opts.ifaceCanReach}`;
  } else {
    const link = host.defaultRouteDev ? usable.find((l) => l.name === host.defaultRouteDev) : undefined;
    if (!link) throw new InterfaceError('no default route; choose an interface with --iface, --iface-regex or --iface-can-reach');
    uplink = withAddress(link);
    how = 'default route';
  }
  if (!uplink) throw new InterfaceError('the chosen interface has no IPv4 address');

  let publicIP = uplink.address;
  if (opts.publicIP) {
    publicIP = Ipv4.parse(opts.publicIP)!;
    // A public IP that is not local only makes sense behind NAT, with an explicit interface.
    const local = host.links.some((l) => l.addresses.some((a) => a.ip.equals(publicIP)));
    if (!local && opts.ifaces.length === 0 && opts.ifaceRegex.length === 0) {
      throw new InterfaceError(`--public-ip ${opts.publicIP} is not a local address; name the interface with --iface`);
    }
  }
  return { uplink, publicIP, how };
}

interface IpAddrJson {
  ifindex?: number;
  ifname?: string;
  mtu?: number;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/** Reads the links and the route facts selectInterface needs. */
export async function readHostSnapshot(canReach?: string): Promise<HostSnapshot> {
  const addrs = await ipcmd.json<IpAddrJson[]>('ip', ['addr', 'show']);
  const links: LinkInfo[] = [];
  for (const l of addrs) {
    if (typeof l.ifname !== 'string' || typeof l.ifindex !== 'number') continue;
    const addresses = (l.addr_info ?? [])
      .filter((a) => a.family === 'inet')
      .map((a) => ({ ip: Ipv4.parse(a.local), prefixLength: a.prefixlen ?? 32 }))
      .filter((a): a is { ip: Ipv4; prefixLength: number } => a.ip !== undefined);
    links.push({ name: l.ifname, index: l.ifindex, mtu: l.mtu ?? 1500, up: (l.flags ?? []).includes('UP'), addresses });
  }
  const snapshot: HostSnapshot = { links };
  const routes = await ipcmd.json<{ dev?: string }[]>('ip', ['route', 'show', 'default']).catch(() => []);
  if (routes[0]?.dev) snapshot.defaultRouteDev = routes[0].dev;
  if (canReach && Ipv4.parse(canReach)) {
    const got = await ipcmd.json<{ dev?: string; prefsrc?: string }[]>('ip', ['route', 'get', canReach]).catch(() => []);
    if (got[0]?.dev) {
      const src = Ipv4.parse(got[0].prefsrc);
      snapshot.canReach = { dev: got[0].dev, ...(src ? { src } : {}) };
    }
  }
  return snapshot;
}
