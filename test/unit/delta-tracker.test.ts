// The generic desired-vs-kernel tracker: pending updates and deletions follow every change of
// either view, a dump replaces the kernel's view, and equal values are no work. Pure.
import { describe, expect, it } from 'vitest';
import { DeltaTracker } from '../../src/dataplane/delta-tracker.js';

type V = { n: number };
const tracker = () => new DeltaTracker<V>((a, b) => a.n === b.n);
const pending = (t: DeltaTracker<V>) => ({ updates: [...t.pendingUpdates().keys()].sort(), deletions: [...t.pendingDeletions().keys()].sort() });

describe('DeltaTracker', () => {
  it('keeps the pending sets as the difference between the two views', () => {
    const t = tracker();
    t.setDesired('a', { n: 1 });
    t.setDesired('b', { n: 2 });
    expect(pending(t)).toEqual({ updates: ['a', 'b'], deletions: [] });
    t.setDataplane('a', { n: 1 }); // applied
    expect(pending(t)).toEqual({ updates: ['b'], deletions: [] });
    t.setDataplane('c', { n: 3 }); // the kernel holds something we do not want
    expect(pending(t)).toEqual({ updates: ['b'], deletions: ['c'] });
    t.setDesired('c', { n: 3 }); // ... until we want it, as it is
    expect(pending(t)).toEqual({ updates: ['b'], deletions: [] });
    t.setDesired('a', { n: 9 }); // a new value for an applied entry
    expect(pending(t)).toEqual({ updates: ['a', 'b'], deletions: [] });
    expect(t.pendingUpdates().get('a')).toEqual({ n: 9 });
    t.deleteDesired('c');
    expect(pending(t)).toEqual({ updates: ['a', 'b'], deletions: ['c'] });
    expect(t.pendingDeletions().get('c')).toEqual({ n: 3 }); // what to delete: the kernel's entry
    t.deleteDataplane('c');
    t.deleteDesired('b');
    t.setDataplane('a', { n: 9 });
    expect(t.inSync).toBe(true);
  });

  it('replaces the kernel view from a dump: what drifted becomes pending, equal values do not', () => {
    const t = tracker();
    for (const k of ['a', 'b', 'c']) {
      t.setDesired(k, { n: 1 });
      t.setDataplane(k, { n: 1 });
    }
    expect(t.inSync).toBe(true);
    // Deleted by hand (b), changed by hand (c, a new object), added by someone (x), a copy (a).
    t.replaceDataplane(new Map([['a', { n: 1 }], ['c', { n: 5 }], ['x', { n: 7 }]]));
    expect(pending(t)).toEqual({ updates: ['b', 'c'], deletions: ['x'] });
    expect(t.getDataplane('c')).toEqual({ n: 5 });
  });

  it('keeps the pending sets right when a notification writes to the dataplane view as a Map', () => {
    const t = tracker();
    t.setDesired('a', { n: 1 });
    t.replaceDataplane(new Map([['a', { n: 1 }]]));
    const view = t.dataplaneView();
    view.delete('a'); // deleted by hand, as the kernel reports it
    expect(pending(t)).toEqual({ updates: ['a'], deletions: [] });
    view.set('a', { n: 1 }); // put back (our repair, reported too)
    view.set('z', { n: 2 }); // someone added an entry on our device
    expect(pending(t)).toEqual({ updates: [], deletions: ['z'] });
    expect(t.desiredView().get('a')).toEqual({ n: 1 });
  });

  it('reads a dump in place with the outcome of replaceDataplane, keeping the entries it already holds', () => {
    // Random desired views, kernel views and dumps over a few keys, read both ways.
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (let round = 0; round < 300; round++) {
      const byReplace = tracker();
      const inPlace = tracker();
      for (const k of keys) {
        const want = rnd(3);
        const have = rnd(3);
        for (const t of [byReplace, inPlace]) {
          if (want) t.setDesired(k, { n: want });
          if (have) t.setDataplane(k, { n: have });
        }
      }
      const dump = new Map<string, V>();
      for (const k of keys) if (rnd(3)) dump.set(k, { n: rnd(3) + 1 });
      const kept = new Map(keys.map((k) => [k, inPlace.getDataplane(k)]));
      byReplace.replaceDataplane(dump);
      inPlace.beginObserve();
      for (const [k, v] of dump) expect(inPlace.observe(k, v)).toBe(true);
      inPlace.endObserve();
      const view = (t: DeltaTracker<V>) => [...t.dataplaneEntries()].map(([k, v]) => [k, v.n]).sort();
      expect(view(inPlace)).toEqual(view(byReplace));
      expect(pending(inPlace)).toEqual(pending(byReplace));
      for (const [k, v] of dump) {
        // An entry the view held as dumped is the same object afterwards: a resync that finds
        // the kernel as believed allocates nothing.
        const before = kept.get(k);
        if (before && before.n === v.n) expect(inPlace.getDataplane(k)).toBe(before);
      }
    }
  });

  it('refuses a second entry under one key within a dump, and forgets keys between dumps', () => {
    const t = tracker();
    t.setDesired('a', { n: 1 });
    t.beginObserve();
    expect(t.observe('a', { n: 1 })).toBe(true);
    expect(t.observe('a', { n: 2 })).toBe(false); // the caller files it under a key of its own
    t.endObserve();
    expect(t.getDataplane('a')).toBe(t.getDesired('a'));
    expect(t.inSync).toBe(true);
    t.beginObserve();
    t.endObserve(); // an empty dump: the kernel lost it
    expect(pending(t)).toEqual({ updates: ['a'], deletions: [] });
    t.beginObserve();
    expect(t.observe('a', { n: 2 })).toBe(true); // a new dump: 'a' may come again
    t.endObserve();
    expect(pending(t)).toEqual({ updates: ['a'], deletions: [] });
    expect(t.getDataplane('a')).toEqual({ n: 2 });
  });

  it("keeps a kernel copy of a desired entry as the desired value (one object per entry, not two)", () => {
    const t = tracker();
    const want = { n: 1 };
    t.setDesired('a', want);
    t.dataplaneView().set('a', { n: 1 }); // a notification's copy
    expect(t.getDataplane('a')).toBe(want);
    t.replaceDataplane(new Map([['a', { n: 1 }]]));
    expect(t.getDataplane('a')).toBe(want);
    t.setDataplane('b', { n: 2 }); // not desired: kept as it came
    expect(t.getDataplane('b')).toEqual({ n: 2 });
    t.setDesired('b', { n: 2 });
    t.beginObserve();
    t.observe('a', { n: 1 });
    t.observe('b', { n: 2 }); // held as dumped, but as a copy: the desired value replaces it
    t.endObserve();
    expect(t.getDataplane('b')).toBe(t.getDesired('b'));
    expect(t.inSync).toBe(true);
  });
});

describe('DeltaTracker, one slot per key', () => {
  it('keeps both views as Maps equal to plain ones, and no slot for a key neither holds, over random changes and dumps', () => {
    let seed = 11;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const keys = ['a', 'b', 'c', 'd', 'e'];
    const t = tracker();
    const want = new Map<string, V>();
    const have = new Map<string, V>();
    const sorted = (m: Iterable<[string, V]>) => [...m].map(([k, v]) => `${k}=${v.n}`).sort();
    for (let step = 0; step < 3000; step++) {
      const k = keys[rnd(keys.length)]!;
      const v = { n: rnd(3) };
      switch (rnd(7)) {
        case 0:
          t.setDesired(k, v);
          want.set(k, v);
          break;
        case 1:
          t.deleteDesired(k);
          want.delete(k);
          break;
        case 2:
          t.setDataplane(k, v);
          have.set(k, v);
          break;
        case 3:
          expect(t.dataplaneView().delete(k)).toBe(have.delete(k));
          break;
        case 4: {
          // A dump read in place, with a second entry under one key refused.
          const dump = new Map<string, V>();
          for (const d of keys) if (rnd(2)) dump.set(d, { n: rnd(3) });
          t.beginObserve();
          for (const [d, dv] of dump) {
            expect(t.observe(d, dv)).toBe(true);
            expect(t.observe(d, { n: 9 })).toBe(false);
          }
          t.endObserve();
          have.clear();
          for (const [d, dv] of dump) have.set(d, dv);
          break;
        }
        case 5:
          t.replaceDataplane(new Map([[k, v]]));
          have.clear();
          have.set(k, v);
          break;
        case 6:
          t.dataplaneView().clear();
          have.clear();
          break;
      }
      // The values may be the desired objects (a copy gives way to an equal desired value): compare by value.
      expect(sorted(t.desiredView()), `step ${step}`).toEqual(sorted(want));
      expect(sorted(t.dataplaneView()), `step ${step}`).toEqual(sorted(have));
      expect(t.desiredView().size).toBe(want.size);
      expect(t.dataplaneView().size).toBe(have.size);
      expect(t.desiredSize).toBe(want.size);
      for (const key of keys) {
        expect(t.hasDesired(key)).toBe(want.has(key));
        expect(t.dataplaneView().has(key)).toBe(have.has(key));
      }
      expect(t.slotCount).toBe(new Set([...want.keys(), ...have.keys()]).size);
      const pendingNow = pending(t);
      const expected = {
        updates: keys.filter((key) => want.has(key) && (!have.has(key) || have.get(key)!.n !== want.get(key)!.n)),
        deletions: keys.filter((key) => !want.has(key) && have.has(key)),
      };
      expect(pendingNow).toEqual(expected);
    }
  });

  it('refuses a second entry under a key in the same dump even when the key was dropped in between', () => {
    const t = tracker();
    t.beginObserve();
    expect(t.observe('a', { n: 1 })).toBe(true);
    t.deleteDataplane('a'); // a notification applied mid-dump (the converger holds them; the tracker still copes)
    expect(t.observe('a', { n: 2 })).toBe(false);
    t.endObserve();
    expect(t.slotCount).toBe(0);
    expect([...t.dataplaneEntries()]).toEqual([]);
  });
});
