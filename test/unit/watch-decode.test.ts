// weft's WatchResponse decoder (src/store/watch-decode.ts) against the decoder etcd3 itself
// uses (protobufjs through @grpc/proto-loader, with etcd3's options): the same objects, key
// order included, for random responses: puts and deletes with and without their previous
// key-value, enum values etcd does not define, 64-bit integers beyond 2^53 and negative ones,
// empty and binary keys and values, missing fields (defaults) and fields it does not know.
import { describe, expect, it } from 'vitest';
import { decodeWatchResponse } from '../../src/store/watch-decode.js';
import { defined, etcdMethod, randomHeader, randomInt64, randomKv, rng, UNKNOWN_FIELDS } from '../helpers/etcd-proto.js';

const watch = etcdMethod('Watch', 'Watch');

function randomEvent(r: () => number): Record<string, unknown> {
  const t = r();
  return defined({
    // by name, by number, one etcd does not define, and a negative one (10 bytes on the wire)
    type: t < 0.1 ? undefined : t < 0.5 ? 'Put' : t < 0.8 ? 'Delete' : t < 0.85 ? 1 : t < 0.95 ? 7 : -3,
    kv: r() < 0.9 ? randomKv(r) : undefined,
    prev_kv: r() < 0.4 ? randomKv(r) : undefined,
  });
}

function randomResponse(r: () => number): Record<string, unknown> {
  return defined({
    header: randomHeader(r),
    watch_id: randomInt64(r),
    created: r() < 0.3 ? r() < 0.5 : undefined,
    canceled: r() < 0.3 ? r() < 0.5 : undefined,
    compact_revision: randomInt64(r),
    cancel_reason: r() < 0.3 ? ['', 'etcdserver: mvcc: required revision has been compacted', 'ünïcode ✓'][Math.floor(r() * 3)] : undefined,
    fragment: r() < 0.2 ? r() < 0.5 : undefined,
    events: Array.from({ length: Math.floor(r() * 5) }, () => randomEvent(r)),
  });
}

describe("etcd's WatchResponse", () => {
  it('decodes to what etcd3 decodes, for 2,000 random responses', () => {
    const r = rng(13);
    for (let i = 0; i < 2000; i++) {
      const bytes = watch.responseSerialize(randomResponse(r));
      const theirs = watch.responseDeserialize(bytes) as Record<string, unknown>;
      const ours = decodeWatchResponse(bytes);
      expect(ours).toEqual(theirs);
      expect(Object.keys(ours)).toEqual(Object.keys(theirs));
      ours.events.forEach((e, j) => {
        const their = (theirs.events as Record<string, unknown>[])[j]!;
        expect(Object.keys(e)).toEqual(Object.keys(their));
        if (e.kv) expect(Object.keys(e.kv)).toEqual(Object.keys(their.kv as object));
        if (e.prev_kv) expect(Object.keys(e.prev_kv)).toEqual(Object.keys(their.prev_kv as object));
      });
      if (ours.header) expect(Object.keys(ours.header)).toEqual(Object.keys(theirs.header as object));
    }
  });

  it('decodes an event as etcd sends one for a lease put', () => {
    const value = Buffer.from('{"PublicIP":"192.0.2.7","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"76:80:45:b7:ff:27"}}');
    const bytes = watch.responseSerialize({
      header: { cluster_id: '14841639068965178418', member_id: '10276657743932975437', revision: '1042', raft_term: '2' },
      watch_id: '0',
      events: [{ type: 'Put', kv: { key: Buffer.from('/coreos.com/network/subnets/10.5.7.0-24'), create_revision: '1042', mod_revision: '1042', version: '1', value, lease: '7587875342459419914' } }],
    });
    const ours = decodeWatchResponse(bytes);
    expect(ours).toEqual(watch.responseDeserialize(bytes));
    expect(ours.events[0]).toMatchObject({ type: 'Put', prev_kv: null, kv: { mod_revision: '1042', lease: '7587875342459419914' } });
    expect(ours.events[0]!.kv!.value.equals(value)).toBe(true);
  });

  it('skips fields it does not know (a newer etcd), as etcd3 does', () => {
    const bytes = watch.responseSerialize({ watch_id: '4', events: [{ type: 'Delete', kv: { key: Buffer.from('/k'), mod_revision: '7' } }] });
    const both = Buffer.concat([bytes, UNKNOWN_FIELDS]);
    expect(decodeWatchResponse(both)).toEqual(watch.responseDeserialize(both));
  });

  it('refuses a truncated response rather than inventing values', () => {
    const bytes = watch.responseSerialize({ events: [{ type: 'Put', kv: { key: Buffer.from('/coreos.com/network/subnets/10.5.1.0-24'), value: Buffer.from('{}') } }] });
    expect(() => decodeWatchResponse(bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
  });
});
