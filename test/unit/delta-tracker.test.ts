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
});

