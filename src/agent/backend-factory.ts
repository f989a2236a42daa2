// Binds the agent to the kernel dataplane. Kept apart from agent.ts so that the agent's
// lifecycle can be driven with any Backend, and the dataplane knows nothing of leases.
import { createBackend } from '../dataplane/index.js';
import { hostRunner } from '../dataplane/ipcmd.js';
import type { Backend, BackendSettings } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import type { Selection } from './iface.js';

export function createBackendFor(settings: BackendSettings, selection: Selection, logger: Logger): Backend {
  return createBackend(settings, selection.uplink, selection.publicIP, hostRunner, logger);
}
