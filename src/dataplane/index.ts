// The dataplane's entry point for the agent: a Backend for the network's backend type.
import type { IpAddr } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { HostGwBackend } from './hostgw.js';
import type { IpRunner } from './ipcmd.js';
import { DataplaneError } from './errors.js';
import type { Backend, BackendSettings, Uplink } from './types.js';
import { VxlanBackend } from './vxlan.js';

export { IPV6_ROUTE_METRIC, vxlanDeviceNameFor, WEFT_ROUTE_PROTO } from './model.js';
export { hostRunner, IpRunner } from './ipcmd.js';
export { DataplaneError };
export type { Backend, BackendSettings, Peer, Peer4, Peer6, ReconcileReport, Uplink, Uplink4, Uplink6 } from './types.js';

/**
 * The runner decides which namespace iproute2 acts in: production passes `hostRunner` (the
 * agent already runs inside its host's namespace), tests pass `new IpRunner({ netns })`.
 *
 * One backend serves one address family (`settings.family`, 4 by default): the uplink's
 * address, the public IP and the network must all be of it, or this throws a DataplaneError.
 * A dual-stack host creates two, one per family, on the same uplink.
 */
export function createBackend(
  settings: BackendSettings,
  uplink: Uplink,
  publicIP: IpAddr,
  runner: IpRunner,
  logger: Logger,
): Backend {
  switch (settings.type) {
    case 'vxlan':
      return new VxlanBackend(settings, uplink, publicIP, runner, logger.child({ backend: 'vxlan' }));
    case 'host-gw':
      return new HostGwBackend(settings, uplink, runner, logger.child({ backend: 'host-gw' }));
    default:
      throw new DataplaneError(`unsupported backend type ${JSON.stringify((settings as { type: unknown }).type)}`, { step: 'settings' });
  }
}
