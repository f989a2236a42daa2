// The dataplane's entry point for the agent: a Backend for the network's backend type.
import type { Ipv4 } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { HostGwBackend } from './hostgw.js';
import type { IpRunner } from './ipcmd.js';
import { DataplaneError } from './errors.js';
import type { Backend, BackendSettings, Uplink } from './types.js';
import { VxlanBackend } from './vxlan.js';

export { WEFT_ROUTE_PROTO } from './model.js';
export { hostRunner, IpRunner } from './ipcmd.js';
export { DataplaneError };
export type { Backend, BackendSettings, Peer, ReconcileReport, Uplink } from './types.js';

/**
 * The runner decides which namespace iproute2 acts in: production passes `hostRunner` (the
 * agent already runs inside its host's namespace), tests pass `new IpRunner({ netns })`.
 */
export function createBackend(
  settings: BackendSettings,
  uplink: Uplink,
  publicIP: Ipv4,
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
