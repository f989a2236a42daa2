// etcd's gRPC API spoken directly over Node's own HTTP/2 client: the connection settings,
// gRPC's message framing and status, Authenticate, and one unary call. The lease watch
// (watch-stream.ts) and the store's direct reads (direct-kv.ts) use it; everything else the
// store does goes through etcd3 (client.ts).
import { constants, type ClientHttp2Session, type IncomingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import { readFileSync } from 'node:fs';
import { StoreAuthError, StoreUnavailableError } from './errors.js';
import { isTlsFailure, type EtcdOptions } from './client.js';

/** Where and how to connect: the members, and the TLS material and user, as the etcd3 client has them. */
export interface GrpcTarget {
  endpoints: string[];
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
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
export function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
  return out;
}

/** A length-delimited field. */
export function bytesField(field: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(bytes.length)]), bytes]);
}

/** One message in gRPC's frame: not compressed, 4-byte big-endian length, the bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
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
export function statusOf(headers: IncomingHttpHeaders): GrpcStatusError | 'ok' | undefined {
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

export function endpointUrl(endpoint: string, tls: boolean): string {
  const e = endpoint.replace(/\/+$/, '');
  if (/^https?:\/\//.test(e)) return tls ? e.replace(/^http:/, 'https:') : e.replace(/^https:/, 'http:');
  return `${tls ? 'https' : 'http'}://${e}`;
}

/** Any failure of a call or a watch, as the store's typed errors. */
export function typed(err: unknown, endpoints: string[]): Error {
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
export function unary(session: ClientHttp2Session, path: string, message: Buffer, headers: Record<string, string> = {}): Promise<Buffer> {
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

export function grpcHeaders(path: string): Record<string, string> {
  return {
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: path,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
}

/** Node's TLS options for the target (none without TLS material). */
export function sessionOptions(target: GrpcTarget): SecureClientSessionOptions {
  const tls = target.tls;
  if (!tls) return {};
  return {
    ...(tls.ca && tls.ca.length > 0 ? { ca: tls.ca } : {}),
    ...(tls.cert ? { cert: tls.cert } : {}),
    ...(tls.key ? { key: tls.key } : {}),
  };
}

/** The connection settings from the store's flags, by the etcd3 client's rules (client.ts). */
export function grpcTargetOf(opts: EtcdOptions): GrpcTarget {
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
