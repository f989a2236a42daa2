// Typed test values for the dataplane: addresses, blocks and vxlan peers of either family.
// Pure, so unit tests and the kernel fixture share them.
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import type { Peer } from '../../src/dataplane/types.js';

export const ip = (s: string) => Ipv4.parse(s)!;
export const cidr = (s: string) => Cidr.parse(s, { strict: true })!;
export const ip6 = (s: string) => Ipv6.parse(s)!;
export const net6 = (s: string) => Cidr6.parse(s, { strict: true })!;

/** Peer n: subnet 10.5.<n>.0/24, public IP 192.0.2.<n>, MAC 02:00:00:00:00:<n>. */
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

/** vxPeer's IPv6 twin: subnet fd00:5:0:<n>::/64, public IP fd00:1::<n>. */
export function vxPeer6(n: number, over: Partial<Peer> = {}): Peer {
  return {
    key: `fd00:5:0:${n}::-64`,
    subnet: net6(`fd00:5:0:${n}::/64`),
    publicIP: ip6(`fd00:1::${n}`),
    backendType: 'vxlan',
    vtepMAC: `02:00:00:00:06:${n.toString(16).padStart(2, '0')}`,
    vni: 1,
    ...over,
  };
}
