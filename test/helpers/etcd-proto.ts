// etcd's own protobuf codec (through @grpc/proto-loader, with etcd3's options) and random
// etcd messages, for checking weft's hand-written decoders against it.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const loader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
const RPC_PROTO = join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto');
const definitions = new Map<boolean, ReturnType<typeof loader.loadSync>>();
/** etcd's services as etcd3 loads them; with `defaults`, decoded messages carry every unset field's default. */
function definition(defaults: boolean): ReturnType<typeof loader.loadSync> {
  let d = definitions.get(defaults);
  if (!d) definitions.set(defaults, (d = loader.loadSync(RPC_PROTO, { keepCase: true, longs: String, enums: String, defaults, oneofs: true })));
  return d;
}

export interface EtcdCodec {
  requestSerialize: (v: unknown) => Buffer;
  requestDeserialize: (b: Buffer) => unknown;
  responseSerialize: (v: unknown) => Buffer;
  responseDeserialize: (b: Buffer) => unknown;
}

/**
 * One method's codec, e.g. `etcdMethod('KV', 'Range')`. `defaults: false` leaves unset fields
 * out of what it decodes: to check that an encoder sets exactly the fields it should.
 */
export function etcdMethod(service: string, method: string, opts: { defaults?: boolean } = {}): EtcdCodec {
  return (definition(opts.defaults ?? true)[`etcdserverpb.${service}`] as Record<string, EtcdCodec>)[method]!;
}

/** A small deterministic generator, so a failure replays. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** An int64 (or uint64) as etcd3 gives it: decimal text, beyond 2^53 and negative included. */
export function randomInt64(r: () => number, unsigned = false): string | undefined {
  const pick = r();
  if (pick < 0.15) return undefined; // left out: the default
  if (pick < 0.5) return String(Math.floor(r() * 1_000_000));
  if (pick < 0.7) return String(BigInt(Math.floor(r() * 2 ** 31)) * 2n ** 32n + BigInt(Math.floor(r() * 2 ** 32))); // beyond 2^53
  if (pick < 0.8) return unsigned ? '18446744073709551615' : '-' + String(Math.floor(r() * 2 ** 40)); // negative (10-byte varint)
  if (pick < 0.9) return unsigned ? '9223372036854775808' : '9223372036854775807';
  return '0';
}

export function randomBytes(r: () => number): Buffer | undefined {
  if (r() < 0.1) return undefined;
  return Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
}

/** The object without its undefined fields (left out on the wire: the defaults). */
export const defined = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

export function randomKv(r: () => number): Record<string, unknown> {
  return defined({
    key: randomBytes(r),
    create_revision: randomInt64(r),
    mod_revision: randomInt64(r),
    version: randomInt64(r),
    value: randomBytes(r),
    lease: randomInt64(r),
  });
}

export function randomHeader(r: () => number): Record<string, unknown> | undefined {
  return r() < 0.2 ? undefined : defined({ cluster_id: randomInt64(r, true), member_id: randomInt64(r, true), revision: randomInt64(r), raft_term: randomInt64(r, true) });
}

/** Field 9 as a varint, a 64-bit, a length-delimited and a 32-bit value: fields a newer etcd might add. */
export const UNKNOWN_FIELDS = Buffer.from([0x48, 0x96, 0x01, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x4a, 0x02, 0xaa, 0xbb, 0x4d, 1, 2, 3, 4]);
