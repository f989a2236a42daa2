// The connected networks of this host's interfaces, for `weft apply`'s overlap check. Loopback
// and IPv6 link-local addresses are left out: every host has them and no Network may use them
// anyway (alloc/special.ts).
import { networkInterfaces } from 'node:os';
import { netOf, parseIp } from '../alloc/cidr.js';
import { specialRangeOfAddress } from '../alloc/special.js';
import type { HostNetwork } from '../api/network-safety.js';

export function hostNetworks(): HostNetwork[] {
  const out: HostNetwork[] = [];
  for (const [iface, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.internal || !a.cidr) continue;
      const ip = parseIp(a.address);
      const prefix = Number(a.cidr.split('/')[1]);
      if (!ip || !Number.isInteger(prefix) || specialRangeOfAddress(ip)) continue;
      out.push({ iface, net: netOf(ip, prefix), address: a.cidr });
    }
  }
  return out;
}
