// etcd's Watch stream spoken directly over Node's own HTTP/2 client: one gRPC call
// (POST /etcdserverpb.Watch/Watch), its messages framed as gRPC frames them, the responses
// read by watch-decode.ts; the connection and gRPC framing are grpc-http2.ts's.
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
import { connect, constants, type ClientHttp2Stream } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { StoreAuthError } from './errors.js';
import { decodeWatchResponse, type WatchEventObject } from './watch-decode.js';
import { KEEPALIVE_TIME_MS, KEEPALIVE_TIMEOUT_MS } from './client.js';
import { bytesField, decodeAuthenticateToken, encodeAuthenticate, endpointUrl, FrameReader, grpcFrame, grpcHeaders, sessionOptions, statusOf, typed, unary, varint, type GrpcTarget } from './grpc-http2.js';

/** Where and how the watch connects (grpc-http2.ts). */
export type WatchTarget = GrpcTarget;

export interface WatchStreamListener {
  /** One response's events, in order (puts and deletes; unknown event types are left out). */
  events(events: WatchEventObject[]): void;
  /** The watch is over: the stream or connection failed, or etcd cancelled it (compaction). Called once. */
  broken(err: Error): void;
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
  const options = sessionOptions(target);
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
