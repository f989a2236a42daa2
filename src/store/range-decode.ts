// etcd's RangeResponse, decoded from its protobuf bytes into exactly the object etcd3's
// generated decoder makes (protobufjs through @grpc/proto-loader, with etcd3's options:
// keepCase, longs as decimal strings, defaults filled in): every key and value a Buffer, every
// 64-bit integer a decimal string.
//
// Why: an agent's start lists every lease of the network in one Range. Through protobufjs,
// 5,000 leases cost 60-120 ms of a cold process (each type's decoder generated on first use,
// a message object and then a plain copy of it per key-value, four 64-bit integers printed
// through long.js per key-value); this reads the few fields a RangeResponse has in one pass.
// The agent's bundle puts it in place of the generated one for KV.Range
// (build/bundle-agent.mjs); test/unit/range-decode compares the two on random messages.

import type { KV } from '../api/records.js';

export interface RangeKeyValue {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

export interface RangeResponseObject {
  kvs: RangeKeyValue[];
  header: { cluster_id: string; member_id: string; revision: string; raft_term: string } | null;
  more: boolean;
  count: string;
}

/** A cursor over protobuf bytes (also used by watch-decode.ts). */
export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  /** A varint as a Number when it fits 2^53 exactly, else as a BigInt (64 bits, unsigned). */
  varint(): number | bigint {
    const buf = this.buf;
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const b = buf[this.pos++]!;
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
    // More than 49 bits: the rest in BigInt (up to 10 bytes, 64 bits kept).
    let big = BigInt(n);
    let shift = 49n;
    for (let i = 7; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const b = buf[this.pos++]!;
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, big);
      shift += 7n;
    }
    throw new RangeError('varint longer than 10 bytes');
  }

  length(): number {
    const n = this.varint();
    if (typeof n !== 'number' || this.pos + n > this.end) throw new RangeError('length out of bounds');
    return n;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) {
      const n = this.length(); // read first: `pos += length()` would add to the old position
      this.pos += n;
    }
    else if (wire === 5) this.pos += 4;
    else throw new RangeError(`unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new RangeError('field out of bounds');
  }
}

/** int64 as protobufjs prints it with longs: String (signed). */
export function int64(v: number | bigint): string {
  return typeof v === 'number' ? String(v) : BigInt.asIntN(64, v).toString();
}

/** uint64 likewise (unsigned). */
export function uint64(v: number | bigint): string {
  return typeof v === 'number' ? String(v) : v.toString();
}

/**
 * The default of an absent bytes field, shared: nothing can be written into zero bytes, and
 * two Buffer.alloc(0) per key-value were ~8 ms of a start listing 5,000 leases.
 */
const NO_BYTES = Buffer.alloc(0);

/** An mvccpb.KeyValue ending at `end`, with every field (defaults filled in). */
export function keyValue(r: Reader, end: number): RangeKeyValue {
  const kv: RangeKeyValue = { key: NO_BYTES, create_revision: '0', mod_revision: '0', version: '0', value: NO_BYTES, lease: '0' };
  const sub = new Reader(r.buf, r.pos, end);
  while (sub.pos < end) {
    const tag = sub.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const n = sub.length();
      kv.key = sub.buf.subarray(sub.pos, sub.pos + n);
      sub.pos += n;
    } else if (field === 5 && wire === 2) {
      const n = sub.length();
      kv.value = sub.buf.subarray(sub.pos, sub.pos + n);
      sub.pos += n;
    } else if (field === 2 && wire === 0) kv.create_revision = int64(sub.varint());
    else if (field === 3 && wire === 0) kv.mod_revision = int64(sub.varint());
    else if (field === 4 && wire === 0) kv.version = int64(sub.varint());
    else if (field === 6 && wire === 0) kv.lease = int64(sub.varint());
    else sub.skip(wire);
  }
  r.pos = end;
  return kv;
}

/** An etcdserverpb.ResponseHeader ending at `end`. */
export function header(r: Reader, end: number): NonNullable<RangeResponseObject['header']> {
  const h = { cluster_id: '0', member_id: '0', revision: '0', raft_term: '0' };
  const sub = new Reader(r.buf, r.pos, end);
  while (sub.pos < end) {
    const tag = sub.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== 0 || field < 1 || field > 4) {
      sub.skip(wire);
      continue;
    }
    const v = sub.varint();
    if (field === 1) h.cluster_id = uint64(v);
    else if (field === 2) h.member_id = uint64(v);
    else if (field === 3) h.revision = int64(v);
    else h.raft_term = uint64(v);
  }
  r.pos = end;
  return h;
}

/**
 * A RangeResponse's fields, its key-values made by `kv` (each ending at the given offset);
 * count as the varint read. Throws RangeError on malformed input.
 */
function readRange<K>(buf: Buffer, kv: (r: Reader, end: number) => K): { kvs: K[]; header: RangeResponseObject['header']; more: boolean; count: number | bigint } {
  const out = { kvs: [] as K[], header: null as RangeResponseObject['header'], more: false, count: 0 as number | bigint };
  const r = new Reader(buf, 0, buf.length);
  while (r.pos < r.end) {
    const tag = r.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 2 && wire === 2) {
      const n = r.length();
      out.kvs.push(kv(r, r.pos + n));
    } else if (field === 1 && wire === 2) {
      const n = r.length();
      out.header = header(r, r.pos + n);
    } else if (field === 3 && wire === 0) out.more = r.varint() !== 0;
    else if (field === 4 && wire === 0) out.count = r.varint();
    else r.skip(wire);
  }
  return out;
}

/** A RangeResponse's bytes as etcd3's decoder gives them; throws RangeError on malformed input. */
export function decodeRangeResponse(buf: Buffer): RangeResponseObject {
  const { kvs, header: h, more, count } = readRange(buf, keyValue);
  return { kvs, header: h, more, count: int64(count) };
}

/** A Range's answer as the store uses it: its key-values, the revision it was read at, the count. */
export interface RangeResult {
  kvs: KV[];
  revision: number;
  count: number;
}

/** int64 as a Number (negative ones, written in ten bytes, included), as Number(int64(v)) would give it. */
function int64Number(v: number | bigint): number {
  return typeof v === 'number' ? v : Number(BigInt.asIntN(64, v));
}

/**
 * A RangeResponse's bytes straight to the store's KVs: what `toKV` makes of
 * decodeRangeResponse's objects (test/unit/range-decode checks that), without the
 * intermediate objects, the keys' and values' Buffer views and the integers' round trip
 * through text. The direct client's reads (direct-kv.ts) take this way: an agent's start
 * decodes every lease of the network before its first kernel work.
 */
export function decodeRangeKVs(buf: Buffer): RangeResult {
  const { kvs, header: h, count } = readRange(buf, kvOf);
  return { kvs, revision: h ? Number(h.revision) : 0, count: int64Number(count) };
}

/** An mvccpb.KeyValue ending at `end`, as a KV. */
function kvOf(r: Reader, end: number): KV {
  const kv: KV = { key: '', value: '', modRevision: 0, createRevision: 0, version: 0, leaseId: '0' };
  const sub = new Reader(r.buf, r.pos, end);
  const buf = sub.buf;
  while (sub.pos < end) {
    const tag = sub.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if ((field === 1 || field === 5) && wire === 2) {
      const n = sub.length();
      const text = buf.toString('utf8', sub.pos, sub.pos + n);
      if (field === 1) kv.key = text;
      else kv.value = text;
      sub.pos += n;
    } else if (field === 2 && wire === 0) kv.createRevision = int64Number(sub.varint());
    else if (field === 3 && wire === 0) kv.modRevision = int64Number(sub.varint());
    else if (field === 4 && wire === 0) kv.version = int64Number(sub.varint());
    else if (field === 6 && wire === 0) kv.leaseId = int64(sub.varint());
    else sub.skip(wire);
  }
  r.pos = end;
  return kv;
}
