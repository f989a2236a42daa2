// Choosing the uplink the way flanneld does: --iface (name or IP, first found), then
// --iface-regex, then --iface-can-reach, else the default route's interface. The choice is
// a pure function of a snapshot of the host's links; reading the snapshot is the I/O edge
// (dataplane/host-snapshot.ts: over netlink, else with `ip` processes).
//
// A network's stacks decide what the uplink must carry: an IPv4 address (IPv4 and
// dual-stack), a global IPv6 address (dual-stack and IPv6-only), or both. The chosen
// interface's address of each needed family is the VTEP address and, unless --public-ip or
// --public-ipv6 says otherwise, the public IP published in the lease.
import { namedError } from '../api/errors.js';
import { Ipv4, Ipv6, parseIp, type IpAddr } from '../alloc/cidr.js';
import type { HostSnapshot, LinkInfo } from '../dataplane/host-snapshot.js';
import type { Uplink4 as Uplink } from '../dataplane/types.js';

export type { HostSnapshot, LinkInfo };

export interface SelectionOptions {
  ifaces: string[];
  ifaceRegex: string[];
  ifaceCanReach?: string;
  publicIP?: string;
  publicIPv6?: string;
}

/** The address families the network needs on the uplink. */
export interface Stacks {
  ipv4: boolean;
  ipv6: boolean;
}

export interface Uplink6 {
  name: string;
  index: number;
  mtu: number;
  address: Ipv6;
  prefixLength: number;
}

export interface Selection {
  /** The chosen interface (whatever its addresses). */
  link: { name: string; index: number; mtu: number };
  /** The interface with its IPv4 address: present when the network has IPv4. */
  uplink?: Uplink & { prefixLength: number };
  publicIP?: Ipv4;
  /** The interface with its global IPv6 address: present when the network has IPv6. */
  uplink6?: Uplink6;
  publicIPv6?: Ipv6;
  how: string;
}

export class InterfaceError extends namedError('InterfaceError') {}

const IPV4_ONLY: Stacks = { ipv4: true, ipv6: false };

function needText(stacks: Stacks): string {
  if (stacks.ipv4 && stacks.ipv6) return 'an IPv4 and a global IPv6 address';
  return stacks.ipv4 ? 'an IPv4 address' : 'a global IPv6 address';
}

function v6addresses(link: LinkInfo): { ip: Ipv6; prefixLength: number }[] {
  return (link.addresses6 ?? []).filter((a) => !isLinkLocal(a.ip));
}

function isLinkLocal(ip: Ipv6): boolean {
  return ip.value >> 118n === 0x3fan; // fe80::/10
}

function hasAddress(link: LinkInfo, ip: IpAddr): boolean {
  return ip.family === 4 ? link.addresses.some((a) => a.ip.equals(ip)) : v6addresses(link).some((a) => a.ip.equals(ip));
}

/** The interface picked, and the address that picked it (when one did). */
interface Found {
  link: LinkInfo;
  ip?: IpAddr;
  how: string;
}

function findLink(opts: SelectionOptions, host: HostSnapshot, stacks: Stacks): Found {
  const usable = host.links.filter(
    (l) => l.name !== 'lo' && (!stacks.ipv4 || l.addresses.length > 0) && (!stacks.ipv6 || v6addresses(l).length > 0),
  );
  // flanneld's order: each --iface, then each --iface-regex, then --iface-can-reach; the
  // first that finds an interface wins, and none finding one is an error.
  const tried: string[] = [];
  for (const want of opts.ifaces) {
    const ip = parseIp(want);
    const link = ip ? usable.find((l) => hasAddress(l, ip)) : usable.find((l) => l.name === want);
    if (link) return { link, ...(ip ? { ip } : {}), how: `--iface ${want}` };
  }
  if (opts.ifaces.length > 0) tried.push(`none of --iface ${opts.ifaces.join(', ')} exists with ${needText(stacks)}`);
  for (const re of opts.ifaceRegex) {
    const rx = new RegExp(re);
    for (const link of usable) {
      const candidates: IpAddr[] = [
        ...(stacks.ipv4 ? link.addresses.map((a) => a.ip) : []),
        ...(stacks.ipv6 ? v6addresses(link).map((a) => a.ip) : []),
      ];
      const ip = candidates.find((a) => rx.test(a.toString()));
      if (ip) return { link, ip, how: `--iface-regex ${re} (address)` };
      if (rx.test(link.name)) return { link, how: `--iface-regex ${re} (name)` };
    }
  }
  if (opts.ifaceRegex.length > 0) tried.push(`no interface matches --iface-regex ${opts.ifaceRegex.join(', ')}`);
  if (opts.ifaceCanReach) {
    const dev = host.canReach?.dev;
    const link = dev ? usable.find((l) => l.name === dev) : undefined;
    if (link) {
      const src = host.canReach?.src;
      return { link, ...(src && hasAddress(link, src) ? { ip: src } : {}), how: `--iface-can-reach ${opts.ifaceCanReach}` };
    }
    tried.push(`no interface routes to --iface-can-reach ${opts.ifaceCanReach}`);
  }
  if (tried.length > 0) throw new InterfaceError(tried.join('; '));
  // The default route of the network's first stack (IPv4 unless the network is IPv6-only).
  const dev = stacks.ipv4 ? host.defaultRouteDev : host.defaultRouteDev6;
  const link = dev ? usable.find((l) => l.name === dev) : undefined;
  if (!link) {
    const which = stacks.ipv4 ? 'default route' : 'IPv6 default route';
    throw new InterfaceError(`no ${which}${dev ? ` via an interface with ${needText(stacks)}` : ''}; choose an interface with --iface, --iface-regex or --iface-can-reach`);
  }
  return { link, how: stacks.ipv4 ? 'default route' : 'IPv6 default route' };
}

/** A public IP given by flag: any address, but a non-local one only behind NAT, with an explicit interface. */
function checkPublic(flag: string, ip: IpAddr, opts: SelectionOptions, host: HostSnapshot): void {
  const local = host.links.some((l) => hasAddress(l, ip));
  if (!local && opts.ifaces.length === 0 && opts.ifaceRegex.length === 0) {
    throw new InterfaceError(`${flag} ${ip} is not a local address; name the interface with --iface`);
  }
}

export function selectInterface(opts: SelectionOptions, host: HostSnapshot, stacks: Stacks = IPV4_ONLY): Selection {
  const { link, ip, how } = findLink(opts, host, stacks);
  const selection: Selection = { link: { name: link.name, index: link.index, mtu: link.mtu }, how };
  if (stacks.ipv4) {
    const addr = (ip?.family === 4 && link.addresses.find((a) => a.ip.equals(ip))) || link.addresses[0];
    if (!addr) throw new InterfaceError('the chosen interface has no IPv4 address');
    selection.uplink = { name: link.name, index: link.index, mtu: link.mtu, address: addr.ip, prefixLength: addr.prefixLength };
    selection.publicIP = addr.ip;
    if (opts.publicIP) {
      selection.publicIP = Ipv4.parse(opts.publicIP)!;
      checkPublic('--public-ip', selection.publicIP, opts, host);
    }
  }
  // The IPv6 twin of the block above: the same choice among the link's global addresses
  // (link-local ones never count), kept apart because the two families' types differ.
  if (stacks.ipv6) {
    const global = v6addresses(link);
    const addr = (ip?.family === 6 && global.find((a) => a.ip.equals(ip))) || global[0];
    if (!addr) throw new InterfaceError('the chosen interface has no global IPv6 address');
    selection.uplink6 = { name: link.name, index: link.index, mtu: link.mtu, address: addr.ip, prefixLength: addr.prefixLength };
    selection.publicIPv6 = addr.ip;
    if (opts.publicIPv6) {
      selection.publicIPv6 = Ipv6.parse(opts.publicIPv6)!;
      checkPublic('--public-ipv6', selection.publicIPv6, opts, host);
    }
  }
  return selection;
}
