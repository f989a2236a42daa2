// Binds the agent to the kernel dataplane. Kept apart from agent.ts so that the agent's
// lifecycle can be driven with any Backend, and the dataplane knows nothing of leases.
import { createBackend } from '../dataplane/index.js';
import { hostRunner } from '../dataplane/ipcmd.js';
import type { Backend, BackendSettings } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { Selection } from './iface.js';

/** The IPv4 stack's backend; the agent asks for it only when the network has IPv4. */
export function createBackendFor(settings: BackendSettings, selection: Selection, logger: Logger): Backend {
  if (!selection.uplink || !selection.publicIP) throw new Error('the IPv4 backend needs an uplink with an IPv4 address');
  return createBackend(settings, selection.uplink, selection.publicIP, hostRunner, logger);
}
