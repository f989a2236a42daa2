// Building an etcd3 client from flanneld-style connection flags, and classifying its errors.
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  isRecoverableError,
} from 'etcd3';
import { StoreAuthError, StoreUnavailableError } from '../api/errors.js';

export interface EtcdOptions {
  endpoints: string[];
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  username?: string;
  password?: string;
  /** Deadline for each unary call; watches are unbounded. */
  callTimeoutMs?: number;
}

export const DEFAULT_ENDPOINTS = ['http://127.0.0.1:2379'];

export function parseEndpoints(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function createEtcdClient(opts: EtcdOptions): Etcd3 {
  const timeout = opts.callTimeoutMs ?? 5000;
  const hosts = opts.endpoints.map((e) => e.replace(/\/+$/, ''));
  const tls = opts.cafile || opts.certfile || opts.keyfile;
  return new Etcd3({
    hosts,
    ...(tls
      ? {
          credentials: {
            rootCertificate: opts.cafile ? readFileSync(opts.cafile) : Buffer.alloc(0),
            ...(opts.keyfile ? { privateKey: readFileSync(opts.keyfile) } : {}),
            ...(opts.certfile ? { certChain: readFileSync(opts.certfile) } : {}),
          },
        }
      : {}),
    ...(opts.username ? { auth: { username: opts.username, password: opts.password ?? '' } } : {}),
    // etcd3 has no default deadline on unary calls; without one a dead endpoint hangs forever.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
  });
}

/** Maps any error from etcd3 to weft's typed store errors; other errors pass through. */
export function classifyEtcdError(err: unknown, endpoints: string[]): Error {
  if (err instanceof StoreAuthError || err instanceof StoreUnavailableError) return err;
  if (
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof GRPCUnauthenticatedError
  ) {
    return new StoreAuthError(`etcd refused the credentials: ${(err as Error).message}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (
    (err instanceof Error && isRecoverableError(err)) ||
    (err instanceof Error && (err.name === 'BrokenCircuitError' || err.name.startsWith('GRPC') || err.name === 'ClientRuntimeError'))
  ) {
    return new StoreUnavailableError(
      `etcd is unreachable (tried ${endpoints.join(', ')}): ${message}`,
      endpoints,
      err,
    );
  }
  return err instanceof Error ? err : new Error(message);
}

/** Whether an error is worth retrying later (etcd down, leader change, deadline). */
export function isTransientStoreError(err: unknown): boolean {
  return err instanceof StoreUnavailableError;
}
