// A re-list reports the difference against what the watch knew: added, updated and deleted
// keys, and nothing for a record that did not change (which keeps its object). Pure.
import { describe, expect, it } from 'vitest';
import { diffListing, withoutValueText } from '../../src/agent/lease-watch.js';
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

  it('keeps records as `keep` makes them (the value text dropped), and still tells unchanged ones by revision and lease', () => {
    const known = new Map<string, SubnetRecord>();
    const ownName = '10.5.1.0-24';
    const slim = (r: SubnetRecord): SubnetRecord => (r.name === ownName ? r : withoutValueText(r));
    const [a, b] = [rec(ownName, 5), rec('10.5.2.0-24', 6)];
    const added = diffListing(known, [a, b], slim);
    expect(added.map((c) => (c.type === 'deleted' ? '' : c.record.kv.value))).toEqual([a.kv.value, '']);
    const keptB = known.get(b.kv.key)!;
    expect(added[1]).toMatchObject({ type: 'added', record: keptB });
    // Everything but the text is kept.
    expect(keptB.lease).toBe(b.lease);
    expect({ ...keptB, kv: { ...keptB.kv, value: b.kv.value } }).toEqual(b);

    // Listed again as they were: no change, although the kept record has no text to compare.
    expect(diffListing(known, [rec(ownName, 5), rec('10.5.2.0-24', 6)], slim)).toEqual([]);
    expect(known.get(b.kv.key)).toBe(keptB);
    // Written again: a change, carrying the record as kept.
    const changes = diffListing(known, [rec(ownName, 5), rec('10.5.2.0-24', 8, '{"PublicIP":"192.0.2.9","PublicIPv6":null}')], slim);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ type: 'updated', record: { kv: { value: '', modRevision: 8 } }, previous: keptB });
    expect(known.get(b.kv.key)).toBe(changes[0]!.type === 'updated' ? changes[0]!.record : undefined);
    expect(known.get(b.kv.key)!.lease).toMatchObject({ ok: true, value: { publicIP: '192.0.2.9' } });
  });
});
