// weft's RangeResponse decoder (src/store/range-decode.ts) against the decoder etcd3 itself
// uses (protobufjs through @grpc/proto-loader, with etcd3's options): the same objects, key
// order included, for random responses: 64-bit integers beyond 2^53 and negative ones, empty
// and binary keys and values, missing fields (defaults) and fields the decoder does not know.
import { describe, expect, it } from 'vitest';
import { decodeRangeKVs, decodeRangeResponse } from '../../src/store/range-decode.js';
import { toKV } from '../../src/store/store.js';
import { etcdMethod, randomHeader, randomInt64, randomKv, rng, UNKNOWN_FIELDS } from '../helpers/etcd-proto.js';

const range = etcdMethod('KV', 'Range');

function randomResponse(r: () => number): Record<string, unknown> {
  const header = randomHeader(r);
  return {
    ...(header ? { header } : {}),
    kvs: Array.from({ length: Math.floor(r() * 6) }, () => randomKv(r)),
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
    const both = Buffer.concat([bytes, UNKNOWN_FIELDS]);
    expect(decodeRangeResponse(both)).toEqual(range.responseDeserialize(both));
  });

  it('refuses a truncated response rather than inventing values', () => {
    const bytes = range.responseSerialize({ kvs: [{ key: Buffer.from('/coreos.com/network/subnets/10.5.1.0-24'), value: Buffer.from('{}') }] });
    expect(() => decodeRangeResponse(bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
  });

  it('decodes straight to the store\'s KVs what toKV makes of the full decoding, for 2,000 random responses', () => {
    const r = rng(31);
    for (let i = 0; i < 2000; i++) {
      const bytes = range.responseSerialize(randomResponse(r));
      const full = decodeRangeResponse(bytes);
      expect(decodeRangeKVs(bytes)).toEqual({ kvs: full.kvs.map(toKV), revision: Number(full.header?.revision ?? 0), count: Number(full.count) });
    }
    const truncated = range.responseSerialize({ kvs: [{ key: Buffer.from('/k'), value: Buffer.from('{}') }] });
    expect(() => decodeRangeKVs(truncated.subarray(0, truncated.length - 2))).toThrow(RangeError);
  });
});
