// Address ranges that never belong in an overlay network or a peer's lease: the kernel treats
// them specially (loopback, multicast, link-local, broadcast) or nothing routes them. One
// table serves `weft apply` (a Network's range), the agent (a peer's public IP, a stored
// config) and `weft describe lease`.
import { Cidr, Cidr6, type IpAddr, type IpNet } from './cidr.js';

export type SpecialKind = 'unspecified' | 'loopback' | 'link-local' | 'multicast' | 'reserved' | 'ipv4-mapped';

export interface SpecialRange {
  net: IpNet;
  kind: SpecialKind;
  /** "the loopback range 127.0.0.0/8", for messages. */
  what: string;
}

const range = (text: string, kind: SpecialKind, what: string): SpecialRange => {
  const net = (text.includes(':') ? Cidr6.parse(text, { strict: true }) : Cidr.parse(text, { strict: true }))!;
  return { net, kind, what: `${what} ${net}` };
};

export const SPECIAL_RANGES: readonly SpecialRange[] = [
  range('0.0.0.0/8', 'unspecified', '"this network" (RFC 791)'),
  range('127.0.0.0/8', 'loopback', 'the loopback range'),
  range('169.254.0.0/16', 'link-local', 'the link-local range'),
  range('224.0.0.0/4', 'multicast', 'the multicast range'),
  range('240.0.0.0/4', 'reserved', 'the reserved range (and the broadcast address)'),
  range('::/128', 'unspecified', 'the unspecified address'),
  range('::1/128', 'loopback', 'the loopback address'),
  range('::ffff:0:0/96', 'ipv4-mapped', 'the IPv4-mapped range'),
  range('fe80::/10', 'link-local', 'the link-local range'),
  range('ff00::/8', 'multicast', 'the multicast range'),
];

/** The special range an address lies in, if any. */
export function specialRangeOfAddress(ip: IpAddr): SpecialRange | undefined {
  return SPECIAL_RANGES.find((r) => r.net.family === ip.family && r.net.contains(ip));
}

/** The first special range a network overlaps, if any. */
export function specialRangeOverlapping(net: IpNet): SpecialRange | undefined {
  return SPECIAL_RANGES.find((r) => r.net.family === net.family && r.net.overlaps(net));
}

/** Networks shorter than this are refused: a /7 or shorter takes routes from half the Internet, or the default route. */
export const MIN_NETWORK_PREFIX = 8;
