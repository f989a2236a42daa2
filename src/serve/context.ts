// What every handler shares.
import type { Logger } from '../log.js';
import type { ResourceStore } from '../control/resources.js';

export interface ServeContext {
  rs: ResourceStore;
  log: Logger;
  now: () => Date;
  /** Ends open watches at shutdown. */
  closing: AbortSignal;
}
