// Transactions as data: what a change compares and writes, decided without I/O, and how
// etcd would apply it (for planning several objects against one snapshot). Store.commit
// turns these into one etcd transaction.
import type { ICompare, IRequestOp } from 'etcd3';
import type { KV } from '../api/records.js';
import { prefixEnd } from './range.js';

export type Compare =
  | { key: string; modRevision: number }
  | { key: string; absent: true }
  /** No key under the prefix changed after this revision (new keys included). */
  | { prefix: string; unchangedSince: number }
  /** No key under the prefix at all. */
  | { prefix: string; empty: true };

/** One write of a transaction; ops of one transaction apply together or not at all. */
/** A put may attach the key to an etcd lease (its ID), as an agent's subnet key is. */
export type TxnOp = { put: string; value: string; lease?: string } | { delete: string } | { deletePrefix: string };

/** "Unchanged since I read it": the key's mod revision, or absent when it did not exist. */
export function compareKey(key: string, kv: KV | undefined): Compare {
  return kv ? { key, modRevision: kv.modRevision } : { key, absent: true };
}

/** Applies ops to an in-memory copy, as etcd would. */
export function simulate(kvs: Map<string, KV>, ops: TxnOp[], revision: number): Map<string, KV> {
  const out = new Map(kvs);
  for (const op of ops) {
    if ('put' in op) {
      const old = out.get(op.put);
      out.set(op.put, {
        key: op.put,
        value: op.value,
        modRevision: revision,
        createRevision: old?.createRevision ?? revision,
        version: (old?.version ?? 0) + 1,
        leaseId: op.lease ?? '0',
      });
    } else if ('delete' in op) {
      out.delete(op.delete);
    } else {
      for (const k of [...out.keys()]) if (k.startsWith(op.deletePrefix)) out.delete(k);
    }
  }
  return out;
}

// etcd3's CompareTarget/CompareResult enums, by number (the gRPC values).
const TARGET_VERSION = 0;
const TARGET_MOD = 2;
const RESULT_EQUAL = 0;
const RESULT_LESS = 2;

export function toEtcdCompare(c: Compare): ICompare {
  if ('key' in c) {
    return 'absent' in c
      ? { key: Buffer.from(c.key), target: TARGET_VERSION, result: RESULT_EQUAL, version: 0 }
      : { key: Buffer.from(c.key), target: TARGET_MOD, result: RESULT_EQUAL, mod_revision: c.modRevision };
  }
  const range = { key: Buffer.from(c.prefix), range_end: prefixEnd(c.prefix) };
  return 'empty' in c
    ? { ...range, target: TARGET_VERSION, result: RESULT_EQUAL, version: 0 }
    : { ...range, target: TARGET_MOD, result: RESULT_LESS, mod_revision: c.unchangedSince + 1 };
}

export function toEtcdOp(op: TxnOp): IRequestOp {
  if ('put' in op) return { request_put: { key: Buffer.from(op.put), value: Buffer.from(op.value), ...(op.lease !== undefined ? { lease: op.lease } : {}) } };
  if ('delete' in op) return { request_delete_range: { key: Buffer.from(op.delete) } };
  return { request_delete_range: { key: Buffer.from(op.deletePrefix), range_end: prefixEnd(op.deletePrefix) } };
}
