// What a change of the Network under a running agent means for it. Pure.
//
// Some fields can follow live: the lease TTL (used from the next renewal on) and the range
// new subnets come from. The rest shape the kernel state or the subnets themselves (CIDRs,
// subnet lengths, which stacks exist, backend), and changing those under running containers
// is a restart's job: the agent says so once and keeps serving the config it started with.
import type { IpAddr, IpNet } from '../alloc/cidr.js';
import type { LeaseKey } from '../api/lease.js';
import { keyFits, type NetworkConfig, type StackConfig } from '../api/network.js';

export interface ConfigChange {
  /** The config to run with from now on (the old one with the live fields updated). */
  next: NetworkConfig;
  /** Live fields that changed, e.g. ["leaseTTL"]. */
  applied: string[];
  /** Fields that changed but need a restart, e.g. ["backend.vni"]. */
  needsRestart: string[];
  /** The subnets held no longer fit the updated range: they must be given up. */
  subnetOutOfRange: boolean;
}

/**
 * One stack's changes. `prefix` names its fields ("" for IPv4: cidr, subnetMin; "ipv6" for
 * IPv6: ipv6Cidr, ipv6SubnetMin). Returns the stack to run with.
 */
function compareStack<S extends StackConfig<IpNet, IpAddr>>(
  current: S | undefined,
  wanted: S | undefined,
  field: (name: string) => string,
  applied: string[],
  needsRestart: string[],
): S | undefined {
  if (!current || !wanted) {
    if (current || wanted) needsRestart.push(field('cidr'));
    return current;
  }
  const restart: string[] = [];
  if (!current.network.equals(wanted.network)) restart.push(field('cidr'));
  if (current.subnetLen !== wanted.subnetLen) restart.push(field('subnetLength'));
  needsRestart.push(...restart);
  // The range only matters while the CIDR and subnet length are the ones we run with.
  if (restart.length > 0) return current;
  const next = { ...current };
  if (!current.subnetMin.equals(wanted.subnetMin)) {
    applied.push(field('subnetMin'));
    next.subnetMin = wanted.subnetMin;
  }
  if (!current.subnetMax.equals(wanted.subnetMax)) {
    applied.push(field('subnetMax'));
    next.subnetMax = wanted.subnetMax;
  }
  return next;
}

const ipv4Field = (name: string) => name;
const ipv6Field = (name: string) => `ipv6${name[0]!.toUpperCase()}${name.slice(1)}`;

export function compareConfigs(current: NetworkConfig, wanted: NetworkConfig, held: LeaseKey | undefined): ConfigChange {
  const needsRestart: string[] = [];
  const applied: string[] = [];
  const next: NetworkConfig = { ...current };
  if (current.leaseTTLms !== wanted.leaseTTLms) {
    applied.push('leaseTTL');
    next.leaseTTLms = wanted.leaseTTLms;
  }
  const ipv4 = compareStack(current.ipv4, wanted.ipv4, ipv4Field, applied, needsRestart);
  const ipv6 = compareStack(current.ipv6, wanted.ipv6, ipv6Field, applied, needsRestart);
  if (ipv4) next.ipv4 = ipv4;
  if (ipv6) next.ipv6 = ipv6;
  const a = current.backend;
  const b = wanted.backend;
  for (const field of ['type', 'vni', 'port', 'mtu', 'directRouting', 'gbp'] as const) {
    if (a[field] !== b[field]) needsRestart.push(`backend.${field}`);
  }
  return { next, applied, needsRestart, subnetOutOfRange: held !== undefined && !keyFits(next, held) };
}
