// weft's RangeResponse decoder (src/store/range-decode.ts) against the decoder etcd3 itself
// uses (protobufjs through @grpc/proto-loader, with etcd3's options): the same objects, key
// order included, for random responses: 64-bit integers beyond 2^53 and negative ones, empty
// and binary keys and values, missing fields (defaults) and fields the decoder does not know.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeRangeResponse } from '../../src/store/range-decode.js';

const require = createRequire(import.meta.url);
const loader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
const definition = loader.loadSync(join(dirname(require.resolve('etcd3/package.json')), 'proto', 'rpc.proto'), {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});
const range = (definition['etcdserverpb.KV'] as Record<string, { responseSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown }>).Range!;

/** A small deterministic generator, so a failure replays. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

function randomInt64(r: () => number, unsigned = false): string | undefined {
  const pick = r();
  if (pick < 0.15) return undefined; // left out: the default
  if (pick < 0.5) return String(Math.floor(r() * 1_000_000));
  if (pick < 0.7) return String(BigInt(Math.floor(r() * 2 ** 31)) * 2n ** 32n + BigInt(Math.floor(r() * 2 ** 32))); // beyond 2^53
  if (pick < 0.8) return unsigned ? '18446744073709551615' : '-' + String(Math.floor(r() * 2 ** 40)); // negative (10-byte varint)
  if (pick < 0.9) return unsigned ? '9223372036854775808' : '9223372036854775807';
  return '0';
}

function randomBytes(r: () => number): Buffer | undefined {
  if (r() < 0.1) return undefined;
  return Buffer.from(Array.from({ length: Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
}

function randomResponse(r: () => number): Record<string, unknown> {
  const kv = () =>
    Object.fromEntries(
      Object.entries({
        key: randomBytes(r),
        create_revision: randomInt64(r),
        mod_revision: randomInt64(r),
        version: randomInt64(r),
        value: randomBytes(r),
        lease: randomInt64(r),
      }).filter(([, v]) => v !== undefined),
    );
  const header =
    r() < 0.2
      ? undefined
      : Object.fromEntries(
          Object.entries({ cluster_id: randomInt64(r, true), member_id: randomInt64(r, true), revision: randomInt64(r), raft_term: randomInt64(r, true) }).filter(([, v]) => v !== undefined),
        );
  return {
    ...(header ? { header } : {}),
    kvs: Array.from({ length: Math.floor(r() * 6) }, kv),
    ...(r() < 0.5 ? { more: r() < 0.5 } : {}),
    ...(r() < 0.7 ? { count: randomInt64(r) ?? '0' } : {}),
  };
}

describe("etcd's RangeResponse", () => {
  it('decodes to what etcd3 decodes, for 2,000 random responses', () => {
    const r = rng(13);
    for (let i = 0; i < 2000; i++) {
      const bytes = range.responseSerialize(randomResponse(r));
      const theirs = range.responseDeserialize(bytes) as Record<string, unknown>;
      const ours = decodeRangeResponse(bytes);
      expect(ours).toEqual(theirs);
      expect(Object.keys(ours)).toEqual(Object.keys(theirs));
      ours.kvs.forEach((kv, j) => expect(Object.keys(kv)).toEqual(Object.keys((theirs.kvs as object[])[j]!)));
      if (ours.header) expect(Object.keys(ours.header)).toEqual(Object.keys(theirs.header as object));
    }
  });

  it('skips fields it does not know (a newer etcd), as etcd3 does', () => {
    const bytes = range.responseSerialize({ kvs: [{ key: Buffer.from('/k'), value: Buffer.from('v'), mod_revision: '7' }], count: '1' });
    // Field 9 as a varint, a 64-bit, a length-delimited and a 32-bit value, after the known ones.
    const unknown = Buffer.from([0x48, 0x96, 0x01, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x4a, 0x02, 0xaa, 0xbb, 0x4d, 1, 2, 3, 4]);
    const both = Buffer.concat([bytes, unknown]);
    expect(decodeRangeResponse(both)).toEqual(range.responseDeserialize(both));
  });

  it('refuses a truncated response rather than inventing values', () => {
    const bytes = range.responseSerialize({ kvs: [{ key: Buffer.from('/coreos.com/network/subnets/10.5.1.0-24'), value: Buffer.from('{}') }] });
    expect(() => decodeRangeResponse(bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
  });
});
