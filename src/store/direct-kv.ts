// etcd's KV (Range, Txn) and Lease (LeaseGrant, LeaseRevoke) calls spoken directly over Node's
// own HTTP/2 client (grpc-http2.ts), for a process that asks for them (the agent:
// Store.connect's direct option).
//
// Why: an agent's start reads the network config and lists every lease before it can do any
// kernel work, and through etcd3 those first reads cost its thread etcd3's loading (grpc-js's
// channel stack, protobufjs's types: ~25-30 ms) and grpc-js's per-call layers (the channel's
// connection set-up, resolver and load balancer, the call and interceptor stacks, the message
// framer: ~40-50 ms of a start at 5,000 leases), all before the first route
// (docs/performance.md). Here a read is one HTTP/2 stream and a hand-written encoder, and the
// answer goes through the same decoder the bundle gives etcd3 (range-decode.ts).
//
// Only the happy path: the store repeats any call that fails here through etcd3, whose
// retries, breakers and error reports take over (store.ts). That is what etcd3's own retries
// do too: a read repeats without harm, a transaction whose answer was lost may have landed
// (its compares then fail, and the callers re-read to tell: leases.ts), and a lease granted
// twice leaves one unused that expires. Its session is kept for the next call, dropped on
// any failure (the next call connects to the next member), and never keeps the process
// alive on its own.
import { connect, type ClientHttp2Session } from 'node:http2';
import { decodeAuthenticateToken, encodeAuthenticate, endpointUrl, sessionOptions, unary, type GrpcTarget } from './grpc-http2.js';
import { decodeLeaseGrantResponse, decodeTxnResponse, encodeLeaseGrant, encodeLeaseRevoke, encodeRangeRequest, encodeTxnRequest, type RangeRequest } from './kv-codec.js';
import { decodeRangeKVs, type RangeResult } from './range-decode.js';
import type { ICompare, IRequestOp } from 'etcd3';

interface Connection {
  session: ClientHttp2Session;
  /** The call headers: the token, once Authenticate has answered, when the store has a user. */
  headers: Promise<Record<string, string>>;
}

export class DirectKv {
  private conn: Connection | undefined;
  /** The member the next connection goes to. */
  private member = 0;
  private closed = false;

  constructor(
    private readonly target: GrpcTarget,
    /** Each call's deadline, connection and Authenticate included. */
    private readonly timeoutMs: number,
  ) {}

  async range(req: RangeRequest): Promise<RangeResult> {
    return decodeRangeKVs(await this.call('/etcdserverpb.KV/Range', encodeRangeRequest(req)));
  }

  async txn(compare: readonly ICompare[], success: readonly IRequestOp[]): Promise<{ succeeded: boolean; revision: number }> {
    return decodeTxnResponse(await this.call('/etcdserverpb.KV/Txn', encodeTxnRequest(compare, success)));
  }

  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    return decodeLeaseGrantResponse(await this.call('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrant(ttlSeconds)));
  }

  async leaseRevoke(id: string): Promise<void> {
    await this.call('/etcdserverpb.Lease/LeaseRevoke', encodeLeaseRevoke(id));
  }

  close(): void {
    this.closed = true;
    this.conn?.session.destroy();
    this.conn = undefined;
  }

  private async call(path: string, message: Buffer): Promise<Buffer> {
    if (this.closed) throw new Error('the store is closed');
    const conn = this.connection();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${path} had no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([conn.headers.then((headers) => unary(conn.session, path, message, headers)), deadline]);
    } catch (err) {
      this.drop(conn);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private connection(): Connection {
    const live = this.conn;
    if (live && !live.session.closed && !live.session.destroyed) return live;
    const endpoints = this.target.endpoints;
    const endpoint = endpoints[this.member % endpoints.length]!;
    const session = connect(endpointUrl(endpoint, this.target.tls !== undefined), sessionOptions(this.target));
    session.unref();
    const conn: Connection = { session, headers: Promise.resolve({}) };
    // A failed session fails its streams, and so the reads waiting on them (unary).
    session.on('error', () => this.drop(conn));
    session.on('goaway', () => this.drop(conn));
    session.on('close', () => this.drop(conn));
    const auth = this.target.auth;
    if (auth) {
      conn.headers = unary(session, '/etcdserverpb.Auth/Authenticate', encodeAuthenticate(auth.username, auth.password)).then((reply) => ({
        token: decodeAuthenticateToken(reply),
      }));
      conn.headers.catch(() => this.drop(conn));
    }
    this.conn = conn;
    return conn;
  }

  /** Forgets a failed connection: the next call connects again, to the next member. */
  private drop(conn: Connection): void {
    if (this.conn === conn) {
      this.conn = undefined;
      this.member = (this.member + 1) % this.target.endpoints.length;
    }
    if (!conn.session.destroyed) conn.session.destroy();
  }
}

