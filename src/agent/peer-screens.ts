// The peer screen's context for each stack, from the network and this host (its uplink and
// every address it has), and the one check of the network against the uplink. Pure.
import { netOf, type IpAddr } from '../alloc/cidr.js';
import type { FieldProblem } from '../api/errors.js';
import type { NetworkConfig } from '../api/network.js';
import { hostNetworkOverlaps } from '../api/network-safety.js';
import type { ScreenContext } from '../api/peer-screen.js';
import type { HostSnapshot, Selection } from './iface.js';

export function peerScreens(config: NetworkConfig, sel: Selection, host: HostSnapshot): { 4?: ScreenContext; 6?: ScreenContext } {
  const local4: IpAddr[] = host.links.flatMap((l) => l.addresses.map((a) => a.ip));
  const local6: IpAddr[] = host.links.flatMap((l) => (l.addresses6 ?? []).map((a) => a.ip));
  const out: { 4?: ScreenContext; 6?: ScreenContext } = {};
  if (config.ipv4) {
    const u = sel.uplink;
    out[4] = { subnetLen: config.ipv4.subnetLen, localAddresses: local4, ...(u ? { uplink: { address: u.address, prefixLength: u.prefixLength, name: u.name } } : {}) };
  }
  if (config.ipv6) {
    const u = sel.uplink6;
    out[6] = { subnetLen: config.ipv6.subnetLen, localAddresses: local6, ...(u ? { uplink: { address: u.address, prefixLength: u.prefixLength, name: u.name } } : {}) };
  }
  return out;
}

/** The network's ranges that overlap the uplink's networks (the agent warns; apply refuses). */
export function uplinkOverlaps(config: NetworkConfig, sel: Selection): FieldProblem[] {
  const nets = [sel.uplink, sel.uplink6].flatMap((u) =>
    u ? [{ iface: u.name, net: netOf(u.address, u.prefixLength), address: `${u.address}/${u.prefixLength}` }] : [],
  );
  return hostNetworkOverlaps(config, nets);
}
