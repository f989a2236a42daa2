// etcd's Watch stream spoken directly over Node's own HTTP/2 client: one gRPC call
// (POST /etcdserverpb.Watch/Watch), its messages framed as gRPC frames them, the responses
// read by watch-decode.ts. Everything else the store does goes through etcd3.
//
// Why: every lease event reaches the agent as one WatchResponse. Through etcd3 it crossed
// grpc-js (its HTTP/2 stream wrapper, message framer, call and interceptor layers, a promise
// per message), then etcd3's watch manager and watcher (events re-emitted twice): about
// 0.1 ms of CPU per event of the ~1.3 ms an event costs the agent, as much again as this
// file's whole path (a watcher receiving 1,000 puts: 0.24 ms per event through etcd3 with
// weft's decoder, 0.13 ms here; docs/performance.md).
//
// What etcd3 gave that this keeps: TLS with the same files and TLS rules, a token when the
// store has a user (one Authenticate call on the same connection), HTTP/2 keepalive pings
// (etcd3's grpc options: 10 s, 5 s to answer), another member after a failure (each attempt
// starts at the member after the one that failed or broke). What it leaves to the caller: a
// broken watch is reported once and not resumed; the caller lists again and opens a new one
// (store.ts, lease-watch.ts).
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { SecureClientSessionOptions } from 'node:http2';
import { StoreAuthError, StoreUnavailableError } from './errors.js';
import { decodeWatchResponse, type WatchEventObject } from './watch-decode.js';
import { readFileSync } from 'node:fs';
import { isTlsFailure, KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS, type EtcdOptions } from './client.js';

/** Where and how to connect: the members, and the TLS material and user, as the etcd3 client has them. */
export interface WatchTarget {
  endpoints: string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
}

export interface WatchStreamListener {
  /** One response's events, in order (puts and deletes; unknown event types are left out). */
  events(events: WatchEventObject[]): void;
  /** The watch is over: the stream or connection failed, or etcd cancelled it (compaction). Called once. */
  broken(err: Error): void;
}

/**
 * The largest response accepted (grpc-js's default is 4 MiB; etcd sends one revision's events
 * in one response, and a transaction may touch thousands of keys).
 */
const MAX_MESSAGE = 16 << 20;

/** gRPC status codes that mean the credentials were refused. */
const UNAUTHENTICATED = 16;
const PERMISSION_DENIED = 7;

/** A gRPC call's failure status, with etcd's message. */
export class GrpcStatusError extends Error {
  override readonly name = 'GrpcStatusError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** `value` as a protobuf varint (non-negative, below 2^53). */
function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

/** A length-delimited field. */
function bytesField(field: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...varint(bytes.length)]), bytes]);
}

/** One message in gRPC's frame: not compressed, 4-byte big-endian length, the bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/**
 * A WatchRequest with a create_request as etcd3 sends it: key and range_end of the prefix,
 * start_revision, progress_notify.
 */
export function encodeWatchCreate(key: Buffer, rangeEnd: Buffer, startRevision: number): Buffer {
  if (!Number.isSafeInteger(startRevision) || startRevision < 0) throw new RangeError(`bad start revision ${startRevision}`);
  const create = Buffer.concat([
    bytesField(1, key),
    bytesField(2, rangeEnd),
    Buffer.from([3 << 3, ...varint(startRevision)]),
    Buffer.from([4 << 3, 1]), // progress_notify
  ]);
  return bytesField(1, create);
}

/** An AuthenticateRequest: name, password. */
export function encodeAuthenticate(name: string, password: string): Buffer {
  return Buffer.concat([bytesField(1, Buffer.from(name)), bytesField(2, Buffer.from(password))]);
}

/** The token of an AuthenticateResponse (field 2; the header is skipped). */
export function decodeAuthenticateToken(buf: Buffer): string {
  let pos = 0;
  const readVarint = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new RangeError('truncated varint');
      const b = buf[pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
    throw new RangeError('varint too long');
  };
  let token = '';
  while (pos < buf.length) {
    const tag = readVarint();
    const wire = tag & 7;
    if (wire === 0) readVarint();
    else if (wire === 2) {
      const n = readVarint();
      if (pos + n > buf.length) throw new RangeError('truncated field');
      if (tag >>> 3 === 2) token = buf.toString('utf8', pos, pos + n);
      pos += n;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new RangeError(`unknown wire type ${wire}`);
  }
  if (pos > buf.length) throw new RangeError('truncated field');
  return token;
}

/**
 * Reassembles gRPC frames from a stream's chunks; `push` returns the complete messages. A
 * large message's chunks are kept apart until it is whole, then joined once.
 */
export class FrameReader {
  private chunks: Buffer[] = [];
  private have = 0;
  /** The frame being waited for, header included, once its header has arrived. */
  private need = 0;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Buffer[] = [];
    while (this.have >= 5 && this.have >= this.need) {
      let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have);
      this.chunks = [buf];
      if (this.need === 0) {
        if (buf[0] !== 0) throw new Error('etcd sent a compressed message, which was not asked for');
        const len = buf.readUInt32BE(1);
        if (len > MAX_MESSAGE) throw new Error(`etcd sent a ${len}-byte message (at most ${MAX_MESSAGE} accepted)`);
        this.need = 5 + len;
        if (this.have < this.need) break;
      }
      out.push(buf.subarray(5, this.need));
      buf = buf.subarray(this.need);
      this.have = buf.length;
      this.chunks = buf.length > 0 ? [buf] : [];
      this.need = 0;
    }
    return out;
  }
}

/** The gRPC status in a header or trailer block, if any (0 is OK). */
function statusOf(headers: IncomingHttpHeaders): GrpcStatusError | 'ok' | undefined {
  const status = headers['grpc-status'];
  if (status === undefined) return undefined;
  const code = Number(status);
  if (code === 0) return 'ok';
  let message = String(headers['grpc-message'] ?? '');
  try {
    message = decodeURIComponent(message);
  } catch {
    // as sent
  }
  return new GrpcStatusError(code, message || `gRPC status ${code}`);
}

function endpointUrl(endpoint: string, tls: boolean): string {
  const e = endpoint.replace(/\/+$/, '');
  if (/^https?:\/\//.test(e)) return tls ? e.replace(/^http:/, 'https:') : e.replace(/^https:/, 'http:');
  return `${tls ? 'https' : 'http'}://${e}`;
}

/** Any failure on the way to a running watch, as the store's typed errors. */
function typed(err: unknown, endpoints: string[]): Error {
  if (err instanceof StoreAuthError || err instanceof StoreUnavailableError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof GrpcStatusError && (err.code === UNAUTHENTICATED || err.code === PERMISSION_DENIED || /authentication failed|invalid auth token|permission denied/.test(message))) {
    return new StoreAuthError(`etcd refused the credentials: ${message}`);
  }
  if (err instanceof Error && isTlsFailure(err)) {
    return new StoreAuthError(
      `TLS handshake with etcd failed (${endpoints.join(', ')}): ${message}; ` +
        'check the CA, client certificate and key (--etcd-cafile, --etcd-certfile, --etcd-keyfile)',
    );
  }
  return new StoreUnavailableError(`etcd is unreachable (tried ${endpoints.join(', ')}): ${message}`, endpoints, err);
}

/** One unary call on the session: the response message, or the call's status as an error. */
function unary(session: ClientHttp2Session, path: string, message: Buffer, headers: Record<string, string> = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ...grpcHeaders(path), ...headers });
    const reader = new FrameReader();
    let reply: Buffer | undefined;
    let failure: Error | undefined;
    const fail = (err: Error) => (failure ??= err);
    stream.on('response', (h) => {
      const s = statusOf(h);
      if (s instanceof Error) fail(s);
    });
    stream.on('trailers', (h) => {
      const s = statusOf(h);
      if (s instanceof Error) fail(s);
    });
    stream.on('data', (chunk: Buffer) => {
      try {
        for (const m of reader.push(chunk)) reply ??= m;
      } catch (err) {
        fail(err as Error);
      }
    });
    stream.on('error', (err) => fail(err));
    stream.on('close', () => {
      if (failure) reject(failure);
      else if (reply) resolve(reply);
      else reject(new Error(`${path}: the call ended without an answer`));
    });
    stream.end(grpcFrame(message));
  });
}

function grpcHeaders(path: string): Record<string, string> {
  return {
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: path,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
}

/** A running watch; cancel() ends it (idempotent) without reporting it broken. */
export interface WatchStream {
  cancel(): void;
}

/**
 * Connects to one member after another (starting at `first`) until one runs the watch:
 * `prefix` from `fromRevision` on. Resolves when etcd confirmed the watch (its `created`
 * response); rejects with StoreUnavailableError (every member tried, or `timeoutMs` passed)
 * or StoreAuthError (TLS or credentials refused). `member` is the index of the member
 * that answered.
 */
export async function openWatch(
  target: WatchTarget,
  first: number,
  key: Buffer,
  rangeEnd: Buffer,
  fromRevision: number,
  listener: WatchStreamListener,
  timeoutMs: number,
): Promise<{ watch: WatchStream; member: number }> {
  const deadline = Date.now() + timeoutMs;
  const n = target.endpoints.length;
  let last: unknown;
  for (let i = 0; i < n; i++) {
    const member = (first + i) % n;
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const watch = await watchOn(target, target.endpoints[member]!, key, rangeEnd, fromRevision, listener, left);
      return { watch, member };
    } catch (err) {
      last = err;
      const t = typed(err, target.endpoints);
      // Credentials or certificates another member would refuse just the same.
      if (t instanceof StoreAuthError) throw t;
    }
  }
  throw typed(last ?? new Error(`creating the watch timed out after ${timeoutMs} ms`), target.endpoints);
}

function watchOn(
  target: WatchTarget,
  endpoint: string,
  key: Buffer,
  rangeEnd: Buffer,
  fromRevision: number,
  listener: WatchStreamListener,
  timeoutMs: number,
): Promise<WatchStream> {
  const tls = target.tls !== undefined;
  const options: SecureClientSessionOptions = tls
    ? {
        ...(target.tls!.ca && target.tls!.ca.length > 0 ? { ca: target.tls!.ca } : {}),
        ...(target.tls!.cert ? { cert: target.tls!.cert } : {}),
        ...(target.tls!.key ? { key: target.tls!.key } : {}),
      }
    : {};
  return new Promise<WatchStream>((resolve, reject) => {
    const session = connect(endpointUrl(endpoint, tls), options);
    let created = false;
    let over = false;
    let stream: ClientHttp2Stream | undefined;
    let keepalive: NodeJS.Timeout | undefined;
    // Until created: the promise's rejection; after: the listener's broken, once.
    const end = (err: Error) => {
      if (over) return;
      over = true;
      clearInterval(keepalive);
      stream?.close(constants.NGHTTP2_CANCEL);
      session.destroy();
      clearTimeout(timer);
      if (created) listener.broken(err);
      else reject(err);
    };
    const timer = setTimeout(() => end(new Error(`creating the watch on ${endpoint} timed out after ${timeoutMs} ms`)), timeoutMs);
    session.on('error', (err) => end(err));
    session.on('goaway', (code) => end(new Error(`etcd ${endpoint} closed the connection (HTTP/2 GOAWAY ${code})`)));
    session.on('close', () => end(new Error(`the connection to etcd ${endpoint} closed`)));
    const watch: WatchStream = {
      cancel: () => {
        if (over) return;
        over = true;
        clearInterval(keepalive);
        stream?.close(constants.NGHTTP2_CANCEL);
        session.close();
        session.destroy();
      },
    };
    const start = async () => {
      const headers: Record<string, string> = {};
      if (target.auth) {
        const reply = await unary(session, '/etcdserverpb.Auth/Authenticate', encodeAuthenticate(target.auth.username, target.auth.password));
        headers.token = decodeAuthenticateToken(reply);
      }
      if (over) return;
      const s = session.request({ ...grpcHeaders('/etcdserverpb.Watch/Watch'), ...headers });
      stream = s;
      const reader = new FrameReader();
      s.on('response', (h) => {
        const status = statusOf(h);
        if (status instanceof Error) end(status);
      });
      s.on('trailers', (h) => {
        const status = statusOf(h);
        end(status instanceof Error ? status : new Error(`etcd ${endpoint} ended the watch`));
      });
      // The messages after the `created` one wait for the next turn of the event loop: the
      // caller gets the watch (a promise's continuation) before its listener hears anything.
      let backlog: Buffer[] | undefined;
      const handle = (messages: Buffer[]) => {
        for (let i = 0; i < messages.length; i++) {
          if (over) return;
          let res;
          try {
            res = decodeWatchResponse(messages[i]!);
          } catch (err) {
            end(new Error(`etcd ${endpoint} sent a malformed WatchResponse: ${(err as Error).message}`));
            return;
          }
          if (!created) {
            if (!res.created) continue; // nothing is ours before the watch exists
            created = true;
            clearTimeout(timer);
            keepalive = setInterval(() => ping(session, (err) => end(err)), KEEPALIVE_TIME_MS);
            keepalive.unref();
            resolve(watch);
            // The created response again if it carries more (a cancel: a compacted start revision).
            backlog = messages.slice(res.canceled || res.events.length > 0 ? i : i + 1);
            setImmediate(() => {
              const rest = backlog!;
              backlog = undefined;
              handle(rest);
            });
            return;
          }
          if (res.events.length > 0) listener.events(res.events);
          if (res.canceled) {
            const why = res.compact_revision !== '0' ? `compacted at revision ${res.compact_revision}` : res.cancel_reason || 'no reason given';
            end(new Error(`etcd cancelled the watch: ${why}`));
            return;
          }
        }
      };
      s.on('data', (chunk: Buffer) => {
        if (over) return;
        let messages: Buffer[];
        try {
          messages = reader.push(chunk);
        } catch (err) {
          end(err as Error);
          return;
        }
        if (backlog) backlog.push(...messages);
        else handle(messages);
      });
      s.on('error', (err) => end(err));
      s.on('close', () => end(new Error(`etcd ${endpoint} closed the watch stream`)));
      s.write(grpcFrame(encodeWatchCreate(key, rangeEnd, fromRevision)));
    };
    start().catch((err: unknown) => end(err instanceof Error ? err : new Error(String(err))));
  });
}

/** An HTTP/2 ping that must be answered within KEEPALIVE_TIMEOUT_MS, or `dead` is told. */
function ping(session: ClientHttp2Session, dead: (err: Error) => void): void {
  if (session.destroyed) return;
  const timer = setTimeout(() => dead(new Error(`etcd did not answer a keepalive ping within ${KEEPALIVE_TIMEOUT_MS} ms`)), KEEPALIVE_TIMEOUT_MS);
  timer.unref();
  try {
    session.ping((err) => {
      clearTimeout(timer);
      if (err && !session.destroyed) dead(err);
    });
  } catch (err) {
    clearTimeout(timer);
    dead(err as Error);
  }
}

/** The watch's connection settings from the store's flags, by the etcd3 client's rules (client.ts). */
export function watchTargetOf(opts: EtcdOptions): WatchTarget {
  const tls = opts.cafile || opts.certfile || opts.keyfile;
  return {
    endpoints: opts.endpoints,
    ...(tls
      ? {
          tls: {
            ...(opts.cafile ? { ca: readFileSync(opts.cafile) } : {}),
            ...(opts.certfile ? { cert: readFileSync(opts.certfile) } : {}),
            ...(opts.keyfile ? { key: readFileSync(opts.keyfile) } : {}),
          },
        }
      : {}),
    ...(opts.username ? { auth: { username: opts.username, password: opts.password ?? '' } } : {}),
  };
}
