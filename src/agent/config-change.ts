// What a change of the Network under a running agent means for it. Pure.
//
// Some fields can follow live: the lease TTL (used from the next renewal on) and the range
// new subnets come from. The rest shape the kernel state or the subnet itself (CIDR, subnet
// length, backend), and changing those under running containers is a restart's job: the
// agent says so once and keeps serving the config it started with.
import { subnetFits, type NetworkConfig } from '../api/network.js';
import type { Cidr } from '../alloc/cidr.js';

export interface ConfigChange {
  /** The config to run with from now on (the old one with the live fields updated). */
  next: NetworkConfig;
  /** Live fields that changed, e.g. ["leaseTTL"]. */
  applied: string[];
  /** Fields that changed but need a restart, e.g. ["backend.vni"]. */
  needsRestart: string[];
  /** The subnet held no longer fits the updated range: it must be given up. */
  subnetOutOfRange: boolean;
}

export function compareConfigs(current: NetworkConfig, wanted: NetworkConfig, held: Cidr | undefined): ConfigChange {
  const needsRestart: string[] = [];
  if (!current.network.equals(wanted.network)) needsRestart.push('cidr');
  if (current.subnetLen !== wanted.subnetLen) needsRestart.push('subnetLength');
  const a = current.backend;
  const b = wanted.backend;
  for (const field of ['type', 'vni', 'port', 'mtu', 'directRouting', 'gbp'] as const) {
    if (a[field] !== b[field]) needsRestart.push(`backend.${field}`);
  }

  const applied: string[] = [];
  const next: NetworkConfig = { ...current };
  if (current.leaseTTLms !== wanted.leaseTTLms) {
    applied.push('leaseTTL');
    next.leaseTTLms = wanted.leaseTTLms;
  }
  // The range only matters while the CIDR and subnet length are the ones we run with.
  if (!needsRestart.includes('cidr') && !needsRestart.includes('subnetLength')) {
    if (!current.subnetMin.equals(wanted.subnetMin)) {
      applied.push('subnetMin');
      next.subnetMin = wanted.subnetMin;
    }
    if (!current.subnetMax.equals(wanted.subnetMax)) {
      applied.push('subnetMax');
      next.subnetMax = wanted.subnetMax;
    }
  }
  return { next, applied, needsRestart, subnetOutOfRange: held !== undefined && !subnetFits(next, held) };
}
