// A re-list reports the difference against what the watch knew: added, updated and deleted
// keys, and nothing for a record that did not change (which keeps its object). Pure.
import { describe, expect, it } from 'vitest';
import { diffListing, LeaseMark, valueDigest, wholeRecord, type KnownLease } from '../../src/agent/lease-watch.js';
import { subnetRecord, type SubnetRecord } from '../../src/store/store.js';

const PREFIX = '/coreos.com/network/subnets/';
const rec = (name: string, modRevision: number, value = '{"PublicIP":"192.0.2.1","PublicIPv6":null}', leaseId = '7'): SubnetRecord =>
  subnetRecord('default', PREFIX, { key: PREFIX + name, value, modRevision, createRevision: 1, version: 1, leaseId });

describe('diffListing', () => {
  it('reports each change once and keeps unchanged records as they were', () => {
    const known = new Map<string, SubnetRecord>();
    const a = rec('10.5.1.0-24', 5);
    const b = rec('10.5.2.0-24', 6);
    expect(diffListing(known, [a, b]).map((c) => `${c.type} ${c.key.slice(PREFIX.length)}`)).toEqual(['added 10.5.1.0-24', 'added 10.5.2.0-24']);

    const a2 = rec('10.5.1.0-24', 5); // the same record, listed again
    const b2 = rec('10.5.2.0-24', 9); // written again while we were away
    const c = rec('10.5.3.0-24', 10);
    const changes = diffListing(known, [a2, b2, c]);
    expect(changes.map((ch) => `${ch.type} ${ch.key.slice(PREFIX.length)}`)).toEqual(['updated 10.5.2.0-24', 'added 10.5.3.0-24']);
    expect(changes[0]).toMatchObject({ type: 'updated', record: b2, previous: b });
    expect(known.get(a.kv.key)).toBe(a);

    // A reservation made of a lease (same value, the etcd lease detached) is a change too.
    const c2 = rec('10.5.3.0-24', 10, undefined, '0');
    expect(diffListing(known, [c2]).map((ch) => `${ch.type} ${ch.key.slice(PREFIX.length)}`)).toEqual([
      'updated 10.5.3.0-24',
      'deleted 10.5.1.0-24',
      'deleted 10.5.2.0-24',
    ]);
    expect([...known.keys()]).toEqual([c.kv.key]);
  });

  it('keeps what `keep` makes of each record (a mark), reports the records themselves, and tells unchanged keys by revision and lease', () => {
    const known = new Map<string, KnownLease>();
    const ownName = '10.5.1.0-24';
    const markOthers = (r: SubnetRecord): KnownLease => (r.name === ownName ? r : LeaseMark.of(r));
    const [a, b] = [rec(ownName, 5), rec('10.5.2.0-24', 6)];
    const added = diffListing(known, [a, b], markOthers);
    expect(added).toEqual([
      { type: 'added', key: a.kv.key, record: a },
      { type: 'added', key: b.kv.key, record: b },
    ]);
    expect(known.get(a.kv.key)).toBe(a);
    const markB = known.get(b.kv.key)!;
    expect(markB).toEqual(new LeaseMark(b.kv.key, 6, false, valueDigest(b.kv.value)));
    expect(wholeRecord(markB)).toBeUndefined();

    // Listed again as they were: no change, although only a mark is left to compare with.
    expect(diffListing(known, [rec(ownName, 5), rec('10.5.2.0-24', 6)], markOthers)).toEqual([]);
    expect(known.get(b.kv.key)).toBe(markB);
    // Written again, or the etcd lease detached: a change, with the record and the mark it replaces.
    const b2 = rec('10.5.2.0-24', 8, '{"PublicIP":"192.0.2.9","PublicIPv6":null}');
    expect(diffListing(known, [rec(ownName, 5), b2], markOthers)).toEqual([{ type: 'updated', key: b.kv.key, record: b2, previous: markB }]);
    expect(known.get(b.kv.key)).toEqual(new LeaseMark(b.kv.key, 8, false, valueDigest(b2.kv.value)));
    const b3 = rec('10.5.2.0-24', 8, undefined, '0');
    expect(diffListing(known, [rec(ownName, 5), b3], markOthers).map((c) => c.type)).toEqual(['updated']);
    // Gone: deleted, with its mark.
    expect(diffListing(known, [rec(ownName, 5)], markOthers)).toEqual([{ type: 'deleted', key: b.kv.key, previous: new LeaseMark(b.kv.key, 8, true, valueDigest(b3.kv.value)) }]);
  });

  it('tells a value rewritten at a revision it saw before (an etcd restored from a snapshot) changed, mark or whole record', () => {
    const known = new Map<string, KnownLease>();
    const ownName = '10.5.1.0-24';
    const markOthers = (r: SubnetRecord): KnownLease => (r.name === ownName ? r : LeaseMark.of(r));
    diffListing(known, [rec(ownName, 5), rec('10.5.2.0-24', 6)], markOthers);
    const own2 = rec(ownName, 5, '{"PublicIP":"192.0.2.7","PublicIPv6":null}');
    const b2 = rec('10.5.2.0-24', 6, '{"PublicIP":"192.0.2.8","PublicIPv6":null}');
    expect(diffListing(known, [own2, b2], markOthers).map((c) => `${c.type} ${c.key.slice(PREFIX.length)}`)).toEqual([
      'updated 10.5.1.0-24',
      'updated 10.5.2.0-24',
    ]);
    expect(diffListing(known, [own2, b2], markOthers)).toEqual([]);
  });

  it('digests values by every character', () => {
    const a = '{"PublicIP":"192.0.2.1","PublicIPv6":null}';
    expect(valueDigest(a)).toBe(valueDigest(String(a)));
    const digests = new Set<number>();
    for (let i = 0; i < a.length; i++) digests.add(valueDigest(a.slice(0, i) + String.fromCharCode(a.charCodeAt(i) ^ 1) + a.slice(i + 1)));
    expect(digests.size).toBe(a.length);
    expect(digests.has(valueDigest(a))).toBe(false);
  });
});
