// Screening a peer's lease before anything of it reaches the kernel. Pure.
//
// A lease is written by any host with credentials under the prefix (or by hand, or by a
// flanneld with a bug), so every field is untrusted. The agent calls screenPeer once per
// lease value (per address family) while selecting peers, and leaves a screened lease out
// with one log line and a metric; `weft describe lease` calls it too, without the host part,
// to say why agents leave a lease out.
import { Ipv4, netOf, type IpAddr, type IpNet } from '../alloc/cidr.js';
import { specialRangeOfAddress } from '../alloc/special.js';

export type ScreenReason =
  /** The public IP is unspecified, loopback, link-local, multicast, reserved, IPv4-mapped, or the uplink's broadcast. */
  | 'public-ip'
  /** The subnet's prefix length is not the network's subnet length. */
  | 'prefix-length'
  /** The subnet covers the default route. */
  | 'default-route'
  /** The subnet overlaps the network of this host's uplink (its underlay). */
  | 'uplink-network'
  /** The subnet holds one of this host's own addresses. */
  | 'local-address';

export const SCREEN_REASONS: readonly ScreenReason[] = ['public-ip', 'prefix-length', 'default-route', 'uplink-network', 'local-address'];

export interface Screened {
  reason: ScreenReason;
  /** For the log line and describe: "public IP 224.0.0.1 is in the multicast range 224.0.0.0/4". */
  message: string;
}

/** What the screen compares a lease with: the network's stack and, on a host, its addresses. */
export interface ScreenContext {
  /** The subnet length of the stack's network. */
  subnetLen: number;
  /** The uplink's address and prefix length in this family (on a host). */
  uplink?: { address: IpAddr; prefixLength: number; name: string };
  /** Every address of this host in this family (on a host). */
  localAddresses?: readonly IpAddr[];
}

export function screenPeer(ctx: ScreenContext, subnet: IpNet, publicIP: IpAddr): Screened | undefined {
  if (subnet.prefix === 0) return { reason: 'default-route', message: `subnet ${subnet} covers the default route` };
  if (subnet.prefix !== ctx.subnetLen) {
    return { reason: 'prefix-length', message: `subnet ${subnet} is not a /${ctx.subnetLen}, the network's subnet length` };
  }
  const special = specialRangeOfAddress(publicIP);
  if (special) return { reason: 'public-ip', message: `public IP ${publicIP} is in ${special.what}` };
  const up = ctx.uplink;
  if (up) {
    const uplinkNet = netOf(up.address, up.prefixLength);
    if (publicIP instanceof Ipv4 && uplinkNet.family === 4 && up.prefixLength <= 30 && publicIP.value === (uplinkNet.last as number)) {
      return { reason: 'public-ip', message: `public IP ${publicIP} is the broadcast address of ${up.name}'s network ${uplinkNet}` };
    }
    if (uplinkNet.overlaps(subnet)) {
      return { reason: 'uplink-network', message: `subnet ${subnet} overlaps ${uplinkNet}, the network of this host's uplink ${up.name}` };
    }
  }
  const local = ctx.localAddresses?.find((a) => a.family === subnet.family && subnet.contains(a));
  if (local) return { reason: 'local-address', message: `subnet ${subnet} holds ${local}, an address of this host` };
  return undefined;
}
