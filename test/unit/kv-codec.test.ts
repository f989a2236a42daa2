// The direct client's request encoders and answer decoders (src/store/kv-codec.ts), against
// etcd's own codec: every request must decode, in etcd's codec, to what etcd3 sends for the
// same objects, and every answer etcd's codec writes must read back as etcd meant it.
import { describe, expect, it } from 'vitest';
import {
  decodeLeaseGrantResponse,
  decodeTxnResponse,
  encodeLeaseGrant,
  encodeLeaseRevoke,
  encodeRangeRequest,
  encodeTxnRequest,
  type RangeRequest,
} from '../../src/store/kv-codec.js';
import { toEtcdCompare, toEtcdOp, type Compare, type TxnOp } from '../../src/store/txn.js';
import { etcdMethod, randomInt64, rng } from '../helpers/etcd-proto.js';

const exact = (s: string, m: string) => etcdMethod(s, m, { defaults: false });
const filled = (s: string, m: string) => etcdMethod(s, m, { defaults: true });

/** What etcd reads from `bytes`, with every field's default: encodings that differ only in explicit zeros compare equal. */
function asEtcdReads(service: string, method: string, bytes: Buffer): unknown {
  return filled(service, method).requestDeserialize(bytes);
}

describe('RangeRequest', () => {
  it('encodes exactly the fields asked for, as etcd reads them', () => {
    const key = Buffer.from('/coreos.com/network/subnets/');
    const end = Buffer.from('/coreos.com/network/subnets0');
    const cases: [RangeRequest, Record<string, unknown>][] = [
      [{ key }, { key }],
      [{ key, rangeEnd: end }, { key, range_end: end }],
      [{ key, rangeEnd: end, countOnly: true }, { key, range_end: end, count_only: true }],
      [{ key, rangeEnd: end, keysOnly: true, revision: 300 }, { key, range_end: end, keys_only: true, revision: '300' }],
      [{ key, serializable: true }, { key, serializable: true }],
      [{ key, revision: 2 ** 53 - 1 }, { key, revision: String(2 ** 53 - 1) }],
    ];
    for (const [req, want] of cases) expect(exact('KV', 'Range').requestDeserialize(encodeRangeRequest(req))).toEqual(want);
    expect(() => encodeRangeRequest({ key, revision: -1 })).toThrow(RangeError);
    expect(() => encodeRangeRequest({ key, revision: 1.5 })).toThrow(RangeError);
  });
});

describe('TxnRequest', () => {
  const codec = filled('KV', 'Txn');

  /** A random transaction of the kinds weft writes (txn.ts): every compare and op kind, lease IDs beyond 2^53. */
  function randomTxn(r: () => number): { compares: Compare[]; ops: TxnOp[] } {
    const key = () => `/weft/${'k'.repeat(1 + Math.floor(r() * 40))}/${Math.floor(r() * 1e6)}\u00e9`;
    const rev = () => Math.floor(r() * 2 ** 40);
    const compares: Compare[] = [];
    for (let i = Math.floor(r() * 4); i > 0; i--) {
      const pick = Math.floor(r() * 4);
      compares.push(
        pick === 0 ? { key: key(), absent: true } : pick === 1 ? { key: key(), modRevision: rev() } : pick === 2 ? { prefix: key(), empty: true } : { prefix: key(), unchangedSince: rev() },
      );
    }
    const ops: TxnOp[] = [];
    for (let i = Math.floor(r() * 4); i > 0; i--) {
      const pick = Math.floor(r() * 4);
      const lease = randomInt64(r, true);
      ops.push(
        pick === 0 ? { put: key(), value: `{"PublicIP":"192.0.2.${i}"}` } : pick === 1 ? { put: key(), value: '', ...(lease && lease !== '0' ? { lease } : {}) } : pick === 2 ? { delete: key() } : { deletePrefix: key() },
      );
    }
    return { compares, ops };
  }

  it('says what etcd3 says for the same compares and ops, on 2,000 random transactions', () => {
    const r = rng(20261206);
    for (let i = 0; i < 2000; i++) {
      const { compares, ops } = randomTxn(r);
      const compare = compares.map(toEtcdCompare);
      const success = ops.map(toEtcdOp);
      const theirs = codec.requestSerialize({ compare, success, failure: [] });
      expect(asEtcdReads('KV', 'Txn', encodeTxnRequest(compare, success))).toEqual(codec.requestDeserialize(theirs));
    }
  });

  it('writes the compared version even when it is 0 (a oneof: etcd sees it set)', () => {
    const [c] = [{ key: '/a', absent: true } as Compare].map(toEtcdCompare);
    expect(exact('KV', 'Txn').requestDeserialize(encodeTxnRequest([c!], []))).toEqual({
      compare: [{ key: Buffer.from('/a'), version: '0', target_union: 'version' }],
    });
  });

  it('refuses what it does not encode, rather than send less', () => {
    expect(() => encodeTxnRequest([], [{ request_put: { key: Buffer.from('a'), prev_kv: true } }])).toThrow(TypeError);
    expect(() => encodeTxnRequest([], [{ request_range: { key: Buffer.from('a') } }])).toThrow(TypeError);
  });
});

describe('answers', () => {
  it('reads a TxnResponse\'s outcome and revision', () => {
    const codec = filled('KV', 'Txn');
    for (const succeeded of [true, false]) {
      for (const revision of ['1', '300', String(2 ** 53 - 1)]) {
        const bytes = codec.responseSerialize({
          header: { cluster_id: '18446744073709551615', member_id: '2', revision, raft_term: '4' },
          succeeded,
          responses: [{ response_put: { header: { revision } } }, { response_delete_range: { deleted: '3' } }],
        });
        expect(decodeTxnResponse(bytes)).toEqual({ succeeded, revision: Number(revision) });
      }
    }
    expect(() => decodeTxnResponse(Buffer.from([0x0a, 0x05, 0x18]))).toThrow(RangeError);
  });

  it('encodes LeaseGrant and LeaseRevoke, and reads the granted ID (beyond 2^53) and TTL', () => {
    expect(exact('Lease', 'LeaseGrant').requestDeserialize(encodeLeaseGrant(86400))).toEqual({ TTL: '86400' });
    const id = '7587862345457172234';
    expect(exact('Lease', 'LeaseRevoke').requestDeserialize(encodeLeaseRevoke(id))).toEqual({ ID: id });
    const codec = filled('Lease', 'LeaseGrant');
    expect(decodeLeaseGrantResponse(codec.responseSerialize({ header: { revision: '9' }, ID: id, TTL: '60', error: '' }))).toEqual({ id, ttl: 60 });
    expect(() => decodeLeaseGrantResponse(codec.responseSerialize({ ID: id, TTL: '60', error: 'lease already exists' }))).toThrow(/lease already exists/);
    expect(() => decodeLeaseGrantResponse(codec.responseSerialize({ TTL: '60' }))).toThrow(/no lease ID/);
  });
});
