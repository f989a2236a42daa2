// etcd's WatchResponse, decoded from its protobuf bytes into exactly the object etcd3's
// generated decoder makes (protobufjs through @grpc/proto-loader, with etcd3's options:
// keepCase, longs as decimal strings, enums as their names, defaults filled in). The reader,
// the KeyValue and the header are range-decode.ts's.
//
// Why: every lease event reaches the agent as one WatchResponse. protobufjs decodes it into a
// message object and then copies it into a plain one (toObject), printing four 64-bit
// integers per key-value and four per header through long.js: about 0.05 ms of an event's
// ~1.5 ms of agent CPU, and a dozen generated functions that V8 compiles again in every
// agent. This reads the few fields a WatchResponse has in one pass. The agent's bundle puts
// it in place of the generated one for Watch.Watch (build/bundle-agent.mjs);
// test/unit/watch-decode compares the two on random messages.
import { header, int64, keyValue, Reader, type RangeKeyValue, type RangeResponseObject } from './range-decode.js';

export interface WatchEventObject {
  /** mvccpb.Event.EventType by name; an unknown number stays a number, as protobufjs leaves it. */
  type: 'Put' | 'Delete' | number;
  kv: RangeKeyValue | null;
  prev_kv: RangeKeyValue | null;
}

export interface WatchResponseObject {
  events: WatchEventObject[];
  header: RangeResponseObject['header'];
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  fragment: boolean;
}

const EVENT_TYPES = ['Put', 'Delete'] as const;

function event(r: Reader, end: number): WatchEventObject {
  const e: WatchEventObject = { type: 'Put', kv: null, prev_kv: null };
  const sub = new Reader(r.buf, r.pos, end);
  while (sub.pos < end) {
    const tag = sub.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 1 && wire === 0) {
      // An enum is an int32 on the wire: a negative one arrives as a 10-byte varint.
      const v = sub.varint();
      const n = typeof v === 'number' ? v | 0 : Number(BigInt.asIntN(32, v));
      e.type = EVENT_TYPES[n] ?? n;
    } else if (field === 2 && wire === 2) {
      const n = sub.length();
      e.kv = keyValue(sub, sub.pos + n);
    } else if (field === 3 && wire === 2) {
      const n = sub.length();
      e.prev_kv = keyValue(sub, sub.pos + n);
    } else sub.skip(wire);
  }
  r.pos = end;
  return e;
}

/** A WatchResponse's bytes as etcd3's decoder gives them; throws RangeError on malformed input. */
export function decodeWatchResponse(buf: Buffer): WatchResponseObject {
  const out: WatchResponseObject = {
    events: [],
    header: null,
    watch_id: '0',
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    fragment: false,
  };
  const r = new Reader(buf, 0, buf.length);
  while (r.pos < r.end) {
    const tag = r.varint() as number;
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field === 11 && wire === 2) {
      const n = r.length();
      out.events.push(event(r, r.pos + n));
    } else if (field === 1 && wire === 2) {
      const n = r.length();
      out.header = header(r, r.pos + n);
    } else if (field === 2 && wire === 0) out.watch_id = int64(r.varint());
    else if (field === 3 && wire === 0) out.created = r.varint() !== 0;
    else if (field === 4 && wire === 0) out.canceled = r.varint() !== 0;
    else if (field === 5 && wire === 0) out.compact_revision = int64(r.varint());
    else if (field === 6 && wire === 2) {
      const n = r.length();
      out.cancel_reason = r.buf.toString('utf8', r.pos, r.pos + n);
      r.pos += n;
    } else if (field === 7 && wire === 0) out.fragment = r.varint() !== 0;
    else r.skip(wire);
  }
  return out;
}
