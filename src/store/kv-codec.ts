// The protobuf bytes of the etcd calls the store makes directly (direct-kv.ts): Range, Txn,
// LeaseGrant and LeaseRevoke requests, and the fields of their answers the store reads.
// Requests are the same objects the store hands etcd3 (txn.ts makes them), so the two ways
// to etcd cannot disagree on what a transaction says; test/unit/kv-codec checks every
// encoder against etcd's own codec. Answers are read by range-decode.ts's Reader.
import type { ICompare, IRequestOp } from 'etcd3';
import { bytesField, varint } from './grpc-http2.js';
import { header, int64, Reader } from './range-decode.js';

/** A RangeRequest's fields the store uses; etcd's defaults for the rest. */
export interface RangeRequest {
  key: Buffer;
  /** The end of the range (exclusive); a single key without it. */
  rangeEnd?: Buffer;
  /** Read at this revision (0 or absent: the latest). */
  revision?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  /** Answered by the member itself, without consensus. */
  serializable?: boolean;
}

/** An int64 field as a varint: negative values in ten bytes, as protobuf writes them. */
function int64Field(field: number, value: string | number): Buffer {
  const v = BigInt.asUintN(64, BigInt(value));
  const out = varint(field << 3);
  let rest = v;
  while (rest >= 0x80n) {
    out.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Buffer.from(out);
}

function boolField(field: number): Buffer {
  return Buffer.from([field << 3, 1]);
}

/** etcdserverpb.RangeRequest: key 1, range_end 2, revision 4, serializable 7, keys_only 8, count_only 9. */
export function encodeRangeRequest(r: RangeRequest): Buffer {
  const revision = r.revision ?? 0;
  if (!Number.isSafeInteger(revision) || revision < 0) throw new RangeError(`bad revision ${revision}`);
  const parts: Buffer[] = [bytesField(1, r.key)];
  if (r.rangeEnd) parts.push(bytesField(2, r.rangeEnd));
  if (revision > 0) parts.push(Buffer.from([4 << 3, ...varint(revision)]));
  if (r.serializable) parts.push(boolField(7));
  if (r.keysOnly) parts.push(boolField(8));
  if (r.countOnly) parts.push(boolField(9));
  return Buffer.concat(parts);
}

/**
 * etcdserverpb.Compare: result 1, target 2, key 3, the target's value (version 4,
 * create_revision 5, mod_revision 6, value 7, lease 8; written even when 0: it is a oneof),
 * range_end 64.
 */
function encodeCompare(c: ICompare): Buffer {
  const parts: Buffer[] = [];
  if (Number(c.result)) parts.push(Buffer.from([1 << 3, Number(c.result)]));
  if (Number(c.target)) parts.push(Buffer.from([2 << 3, Number(c.target)]));
  parts.push(bytesField(3, toBytes(c.key)));
  if (c.version !== undefined) parts.push(int64Field(4, c.version));
  else if (c.create_revision !== undefined) parts.push(int64Field(5, c.create_revision));
  else if (c.mod_revision !== undefined) parts.push(int64Field(6, c.mod_revision));
  else if (c.value !== undefined) parts.push(bytesField(7, toBytes(c.value)));
  else if (c.lease !== undefined) parts.push(int64Field(8, c.lease));
  if (c.range_end !== undefined) parts.push(bytesField(64, toBytes(c.range_end)));
  return Buffer.concat(parts);
}

/** etcdserverpb.RequestOp with a PutRequest (2: key 1, value 2, lease 3) or a DeleteRangeRequest (3: key 1, range_end 2). */
function encodeRequestOp(op: IRequestOp): Buffer {
  if (op.request_put) {
    const p = op.request_put;
    if (p.prev_kv || p.ignore_value || p.ignore_lease) throw new TypeError('a direct put carries key, value and lease only');
    const parts = [bytesField(1, toBytes(p.key))];
    if (p.value !== undefined && toBytes(p.value).length > 0) parts.push(bytesField(2, toBytes(p.value)));
    if (p.lease !== undefined && String(p.lease) !== '0') parts.push(int64Field(3, p.lease));
    return bytesField(2, Buffer.concat(parts));
  }
  if (op.request_delete_range) {
    const d = op.request_delete_range;
    if (d.prev_kv) throw new TypeError('a direct delete carries key and range_end only');
    const parts = [bytesField(1, toBytes(d.key))];
    if (d.range_end !== undefined) parts.push(bytesField(2, toBytes(d.range_end)));
    return bytesField(3, Buffer.concat(parts));
  }
  throw new TypeError('a direct transaction puts and deletes only');
}

/** etcdserverpb.TxnRequest: compare 1, success 2, failure 3. */
export function encodeTxnRequest(compare: readonly ICompare[], success: readonly IRequestOp[], failure: readonly IRequestOp[] = []): Buffer {
  return Buffer.concat([
    ...compare.map((c) => bytesField(1, encodeCompare(c))),
    ...success.map((op) => bytesField(2, encodeRequestOp(op))),
    ...failure.map((op) => bytesField(3, encodeRequestOp(op))),
  ]);
}

/** A TxnResponse's outcome: succeeded (2) and the header's revision (1). */
export function decodeTxnResponse(buf: Buffer): { succeeded: boolean; revision: number } {
  const r = new Reader(buf, 0, buf.length);
  let succeeded = false;
  let revision = 0;
  while (r.pos < r.end) {
    const tag = r.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const n = r.length();
      revision = Number(header(r, r.pos + n).revision);
    } else if (field === 2 && wire === 0) succeeded = r.varint() !== 0;
    else r.skip(wire);
  }
  return { succeeded, revision };
}

/** etcdserverpb.LeaseGrantRequest: TTL 1 (seconds), ID 2 (0: etcd picks). */
export function encodeLeaseGrant(ttlSeconds: number): Buffer {
  return int64Field(1, ttlSeconds);
}

/** A LeaseGrantResponse's ID (2) and TTL (3); its error (4), when etcd sets one, thrown. */
export function decodeLeaseGrantResponse(buf: Buffer): { id: string; ttl: number } {
  const r = new Reader(buf, 0, buf.length);
  let id = '0';
  let ttl = 0;
  while (r.pos < r.end) {
    const tag = r.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 2 && wire === 0) id = int64(r.varint());
    else if (field === 3 && wire === 0) ttl = Number(int64(r.varint()));
    else if (field === 4 && wire === 2) {
      const n = r.length();
      const error = buf.toString('utf8', r.pos, r.pos + n);
      r.pos += n;
      if (error) throw new Error(`etcd refused the lease grant: ${error}`);
    } else r.skip(wire);
  }
  if (id === '0') throw new Error('etcd granted no lease ID');
  return { id, ttl };
}

/** etcdserverpb.LeaseRevokeRequest: ID 1. */
export function encodeLeaseRevoke(id: string): Buffer {
  return int64Field(1, id);
}

function toBytes(v: Buffer | string | undefined): Buffer {
  if (v === undefined) throw new TypeError('a key is required');
  return typeof v === 'string' ? Buffer.from(v) : v;
}
