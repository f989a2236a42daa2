// Binds the agent to the kernel dataplane. Kept apart from agent.ts so that the agent's
// lifecycle can be driven with any Backend, and the dataplane knows nothing of leases.
import { createBackend } from '../dataplane/index.js';
import { hostRunner } from '../dataplane/ipcmd.js';
import type { Backend, BackendSettings } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { Selection } from './iface.js';

/**
 * The backend of one address family (`settings.family`, 4 unless given): the IPv4 one on the
 * uplink's IPv4 address and PublicIP, the IPv6 one on its global IPv6 address and PublicIPv6.
 * The agent asks only for the families its network has, and interface selection guarantees
 * the addresses of those.
 */
export function createBackendFor(settings: BackendSettings, selection: Selection, logger: Logger): Backend {
  if (settings.family === 6) {
    if (!selection.uplink6 || !selection.publicIPv6) throw new Error('the IPv6 backend needs an uplink with a global IPv6 address');
    return createBackend(settings, selection.uplink6, selection.publicIPv6, hostRunner, logger);
  }
  if (!selection.uplink || !selection.publicIP) throw new Error('the IPv4 backend needs an uplink with an IPv4 address');
  return createBackend(settings, selection.uplink, selection.publicIP, hostRunner, logger);
}
