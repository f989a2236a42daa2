// Building an etcd3 client from flanneld-style connection flags, and classifying its errors.
import { readFileSync } from 'node:fs';
import { circuitBreaker, ConsecutiveBreaker, ExponentialBackoff, handleWhen, isBrokenCircuitError, retry } from 'cockatiel';
import type { Etcd3 } from 'etcd3';
import { etcd3IfLoaded, etcd3Module } from './etcd3-module.js';
import { StoreAuthError, StoreUnavailableError } from './errors.js';

export interface EtcdOptions {
  endpoints: string[];
  cafile?: string;
  certfile?: string;
  keyfile?: string;
  username?: string;
  password?: string;
  /** Deadline for each attempt of a unary call; watches are unbounded. */
  callTimeoutMs?: number;
  /**
   * Attempts per call (default 8, about 5 s of backoff: enough to ride out a leader
   * election). The CLI uses fewer, so that a dead etcd is reported within a few seconds.
   */
  maxAttempts?: number;
}

/**
 * HTTP/2 keepalive pings on busy connections, so a black-holed etcd (frozen, or a network that
 * drops packets) is noticed while a watch is open. etcd's default --grpc-keepalive-min-time is
 * 5 s: pinging more often gets the connection closed with "too_many_pings".
 */
export const KEEPALIVE_TIME_MS = 10_000;
export const KEEPALIVE_TIMEOUT_MS = 5_000;

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
  return new (etcd3Module().Etcd3)({
    hosts,
    grpcOptions: {
      'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
      'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
      // etcd refuses pings on connections without a call in flight (PermitWithoutStream=false).
      'grpc.keepalive_permit_without_calls': 0,
    },
    faultHandling: {
      // Only connection failures say something about one host. "etcdserver: leader changed"
      // or "request timed out" come from the cluster; counting them would open every host's
      // breaker during one election and turn it into BrokenCircuitError. A breaker
      // half-opens after 1 s (the library's 5 s outlives a member's restart: a rolling restart
      // then found every breaker open while all members were up).
      host: () =>
        circuitBreaker(handleWhen(isHostFault), { halfOpenAfter: 1000, breaker: new ConsecutiveBreaker(3) }),
      // Retries move to another host; with the backoff (about 5 s in all) a call rides out a
      // leader election, during which members answer "leader changed" at once. Dead or frozen
      // hosts cannot stretch this: their breakers open after 3 failures. A moment when every
      // breaker is open is waited out too, within the same budget. TLS failures are
      // configuration errors: retrying them only hides the reason behind an open breaker.
      global: retry(handleWhen(isRetryable), {
        maxAttempts: opts.maxAttempts ?? 8,
        backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1000 }),
      }),
    },
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

/**
 * grpc-js reports a failed TLS handshake as UNAVAILABLE ("No connection established. Last
 * error: ... alert bad certificate" or "unable to verify the first certificate"). These never
 * heal by retrying, so they are told apart by their text.
 */
const TLS_FAILURE =
  /SSL routines|alert (bad|unknown|certificate|handshake)|certificate|self[- ]signed|CERT_|wrong version number|ERR_SSL|ERR_TLS/i;

export function isTlsFailure(err: Error): boolean {
  return TLS_FAILURE.test(err.message);
}

/** etcd3's own test, which only its errors pass: false, without loading it, before it is loaded. */
function isRecoverableError(err: Error): boolean {
  return etcd3IfLoaded()?.isRecoverableError(err) ?? false;
}

function isRetryable(err: Error): boolean {
  return (isRecoverableError(err) && !isTlsFailure(err)) || isBrokenCircuitError(err);
}

function isHostFault(err: Error): boolean {
  return isRecoverableError(err) && !isTlsFailure(err) && !err.message.includes('etcdserver:');
}

/** What went wrong in a TLS handshake, in words an operator can act on. */
function tlsReason(message: string): string {
  const last = (message.split('Last error: ')[1] ?? message)
    .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/, '')
    .replace(/\.?\s*Resolution note:.*$/s, '')
    .replace(/^Error: /, '')
    .trim();
  // OpenSSL's "<hex>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:..." form.
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(last)?.[1] ?? last;
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(reason)) {
    return `etcd rejected the client certificate (none given, or not signed by a CA etcd trusts): ${reason}`;
  }
  if (/unable to verify|self[- ]signed|local issuer/i.test(reason)) {
    return `etcd's server certificate is not signed by the given CA: ${reason}`;
  }
  if (/altnames|hostname/i.test(reason)) return `etcd's server certificate does not name this endpoint: ${reason}`;
  return reason;
}

/** Maps any error from etcd3 to weft's typed store errors; other errors pass through. */
export function classifyEtcdError(err: unknown, endpoints: string[]): Error {
  if (err instanceof StoreAuthError || err instanceof StoreUnavailableError) return err;
  const etcd3 = etcd3IfLoaded();
  if (etcd3 && err instanceof etcd3.EtcdPermissionDeniedError) {
    return new StoreAuthError(`etcd denied permission (the user's roles do not cover this key): ${err.message}`);
  }
  if (
    etcd3 &&
    (err instanceof etcd3.EtcdAuthenticationFailedError || err instanceof etcd3.EtcdInvalidAuthTokenError || err instanceof etcd3.GRPCUnauthenticatedError)
  ) {
    return new StoreAuthError(`etcd refused the credentials: ${(err as Error).message}`);
  }
  const message = err instanceof Error ? err.message : String(err);
  if (message.includes('etcdserver: user name is empty')) {
    return new StoreAuthError(`etcd has authentication enabled and no username was given: ${message}`);
  }
  if (err instanceof Error && isTlsFailure(err)) {
    return new StoreAuthError(
      `TLS handshake with etcd failed (${endpoints.join(', ')}): ${tlsReason(message)}; ` +
        'check the CA, client certificate and key (--etcd-cafile, --etcd-certfile, --etcd-keyfile)',
    );
  }
  // cockatiel's BrokenCircuitError (a call refused by a host's open breaker, on every attempt
  // of the retry budget) keeps the name "Error": only isBrokenCircuitError() recognises it.
  if (
    (err instanceof Error && isRecoverableError(err)) ||
    isBrokenCircuitError(err) ||
    (err instanceof Error && (err.name.startsWith('GRPC') || err.name === 'ClientRuntimeError'))
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
