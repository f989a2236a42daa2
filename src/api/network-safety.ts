// Safety rules for a Network, beyond Flannel's own (network.ts): what weft refuses although
// flanneld would accept it, because it would hurt the hosts that join.
//
// - networkSafetyProblems: one network on its own (a range that takes the default route or a
//   special range, a VNI whose device name the kernel cannot hold). `weft apply` refuses such
//   a spec; an agent that reads such a stored config waits, not ready, and says why once.
// - networkCollisions: one network against the others in the store (two vxlan Networks with one
//   VNI fight over flannel.<VNI>; overlapping ranges fight over routes).
// - hostNetworkOverlaps: one network against the networks of a host's interfaces (peer routes
//   would take the host's underlay).
// All pure; kept apart from the parsing of stored configs, which follows flanneld.
import type { IpNet } from '../alloc/cidr.js';
import { MIN_NETWORK_PREFIX, specialRangeOverlapping } from '../alloc/special.js';
import type { FieldProblem } from './errors.js';
import type { NetworkConfig } from './network.js';

/** The kernel's limit on an interface name (IFNAMSIZ - 1). */
export const MAX_LINK_NAME = 15;

/** flanneld's vxlan device names for a VNI, one per stack the network has. */
export function vxlanDeviceNames(config: Pick<NetworkConfig, 'ipv4' | 'ipv6' | 'backend'>): string[] {
  if (config.backend.type !== 'vxlan') return [];
  const names: string[] = [];
  if (config.ipv4) names.push(`flannel.${config.backend.vni}`);
  if (config.ipv6) names.push(`flannel-v6.${config.backend.vni}`);
  return names;
}

export function networkSafetyProblems(config: NetworkConfig): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const [field, stack] of [['spec.cidr', config.ipv4], ['spec.ipv6Cidr', config.ipv6]] as const) {
    if (!stack) continue;
    const net = stack.network;
    if (net.prefix < MIN_NETWORK_PREFIX) {
      out.push({ field, message: `${net} is shorter than /${MIN_NETWORK_PREFIX}: its peer routes would cover the default route or much of the Internet` });
      continue;
    }
    const special = specialRangeOverlapping(net);
    if (special) out.push({ field, message: `${net} overlaps ${special.what}, which the kernel does not route as unicast` });
  }
  for (const name of vxlanDeviceNames(config)) {
    if (name.length > MAX_LINK_NAME) {
      const largest = name.startsWith('flannel-v6.') ? 9999 : 9_999_999;
      out.push({
        field: 'spec.backend.vni',
        message: `VNI ${config.backend.vni} makes the device name ${name}, longer than the kernel's ${MAX_LINK_NAME} characters; use a VNI up to ${largest}`,
      });
      break;
    }
  }
  return out;
}

/** Another network as the store holds it. */
export interface OtherNetwork {
  name: string;
  config: NetworkConfig;
}

/** What makes a network collide with others on a host running agents of both. */
export function networkCollisions(name: string, config: NetworkConfig, others: readonly OtherNetwork[]): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const o of others) {
    if (o.name === name) continue;
    if (config.backend.type === 'vxlan' && o.config.backend.type === 'vxlan' && o.config.backend.vni === config.backend.vni) {
      const devices = [...new Set([...vxlanDeviceNames(config), ...vxlanDeviceNames(o.config)])].join(' and ');
      out.push({
        field: 'spec.backend.vni',
        message: `VNI ${config.backend.vni} is already used by network/${o.name}; two vxlan Networks with one VNI would fight over ${devices} on a host that joins both`,
      });
    }
    for (const [field, mine, theirs] of [
      ['spec.cidr', config.ipv4?.network, o.config.ipv4?.network],
      ['spec.ipv6Cidr', config.ipv6?.network, o.config.ipv6?.network],
    ] as const) {
      if (mine && theirs && mine.overlaps(theirs)) {
        out.push({ field, message: `${mine} overlaps network/${o.name} (${theirs}); their routes would collide on a host that joins both` });
      }
    }
  }
  return out;
}

/** A connected network of a host interface ("eth0", 192.168.77.0/24 from 192.168.77.10/24). */
export interface HostNetwork {
  iface: string;
  net: IpNet;
  /** The interface's address as configured ("192.168.77.10/24"), for messages. */
  address: string;
}

export function hostNetworkOverlaps(config: NetworkConfig, host: readonly HostNetwork[]): FieldProblem[] {
  const out: FieldProblem[] = [];
  for (const [field, stack] of [['spec.cidr', config.ipv4], ['spec.ipv6Cidr', config.ipv6]] as const) {
    if (!stack) continue;
    for (const h of host) {
      if (h.net.family === stack.network.family && h.net.overlaps(stack.network)) {
        out.push({
          field,
          message: `${stack.network} overlaps ${h.net}, the network of this host's interface ${h.iface} (${h.address}); peer routes would take over the host's underlay`,
        });
      }
    }
  }
  return out;
}
