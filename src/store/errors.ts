// The store's typed failures: etcd unreachable (retry later) or refusing our credentials
// (retrying will not help). The CLI and the agent map them to exit status 2.
import { namedError } from '../api/errors.js';

/** etcd could not be reached or answered with a failure. Exit 2. */
export class StoreUnavailableError extends Error {
  override readonly name = 'StoreUnavailableError';
  constructor(
    message: string,
    readonly endpoints: string[],
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

/** etcd refused our credentials or certificate. Retrying will not help. Exit 2. */
export class StoreAuthError extends namedError('StoreAuthError') {}
