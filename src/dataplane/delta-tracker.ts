// Desired state against what the kernel holds, per entry, with the difference kept up to date
// as both change. Modelled on Calico Felix's DeltaTracker: a desired view, a dataplane view,
// and the pending updates (desired, not yet in the kernel as desired) and pending deletions
// (in the kernel, no longer desired). Setting one entry costs O(1); applying the kernel means
// walking the pending sets, so one lease event costs work proportional to its own entries.
// A resync replaces the dataplane view from a dump; the pending sets then say what drifted.
// Pure in-memory state: no I/O.

/**
 * One key's state: the desired value, the kernel's (as believed), and the number of the last
 * dump that held the key (see beginObserve). The two views and the dump's marks are one Map of
 * these, not three Maps: at 5,000 peers the three were ~140 bytes a key in each of the three
 * tables of an idle agent, and the marks' Map kept a second copy of every key string (the
 * dump's). Created by one literal only, so every slot has one shape.
 */
interface Slot<V> {
  desired: V | undefined;
  dataplane: V | undefined;
  seenIn: number;
}

/** A slot's mark before any dump saw it: never a dump's number (those are 1..MAX_DUMP_NO). */
const NEVER_SEEN = 0;
/** Dump numbers wrap below this, so that they stay small integers (no boxed numbers). */
const MAX_DUMP_NO = 0x3fffffff;

/**
 * One side of the tracker (the desired values or the kernel's) as a Map over the slots.
 * Writes go through the tracker, so the pending sets stay right: code that keeps a belief of
 * the kernel in a Map (a kernel notification's handler) can write to the dataplane view
 * directly.
 */
class TrackerView<V> implements Map<string, V> {
  constructor(
    private readonly slots: ReadonlyMap<string, Slot<V>>,
    private readonly side: 'desired' | 'dataplane',
    /** The tracker's own writes and count for this side (they keep the pending sets right). */
    private readonly tracker: { size(): number; set(key: string, value: V): void; delete(key: string): void },
  ) {}

  get size(): number {
    return this.tracker.size();
  }
  get(key: string): V | undefined {
    return this.slots.get(key)?.[this.side];
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  set(key: string, value: V): this {
    this.tracker.set(key, value);
    return this;
  }
  delete(key: string): boolean {
    if (!this.has(key)) return false;
    this.tracker.delete(key);
    return true;
  }
  clear(): void {
    for (const key of [...this.keys()]) this.delete(key);
  }
  *entries(): IterableIterator<[string, V]> {
    for (const [key, slot] of this.slots) {
      const v = slot[this.side];
      if (v !== undefined) yield [key, v];
    }
  }
  *keys(): IterableIterator<string> {
    for (const [key] of this.entries()) yield key;
  }
  *values(): IterableIterator<V> {
    for (const [, v] of this.entries()) yield v;
  }
  forEach(fn: (value: V, key: string, map: Map<string, V>) => void, thisArg?: unknown): void {
    for (const [key, v] of this.entries()) fn.call(thisArg, v, key, this);
  }
  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
  get [Symbol.toStringTag](): string {
    return 'TrackerView';
  }
}

export class DeltaTracker<V> {
  /** key -> its slot; a key neither view holds has none (outside a dump that saw it). */
  private readonly slots = new Map<string, Slot<V>>();
  private desiredCount = 0;
  private dataplaneCount = 0;
  private readonly updates = new Map<string, V>();
  private readonly deletions = new Map<string, V>();
  private readonly desiredMap = new TrackerView<V>(this.slots, 'desired', {
    size: () => this.desiredCount,
    set: (key, value) => this.setDesired(key, value),
    delete: (key) => this.deleteDesired(key),
  });
  private readonly dataplaneMap = new TrackerView<V>(this.slots, 'dataplane', {
    size: () => this.dataplaneCount,
    set: (key, value) => this.setDataplane(key, value),
    delete: (key) => this.deleteDataplane(key),
  });

  /** `equal` tells two values apart that are not the same object (a dump's entry and ours). */
  constructor(private readonly equal: (a: V, b: V) => boolean) {}

  /** Keys with a slot: those either view holds (outside a dump). For tests: no slot outlives its key. */
  get slotCount(): number {
    return this.slots.size;
  }

  private slotFor(key: string): Slot<V> {
    let slot = this.slots.get(key);
    if (slot === undefined) {
      slot = { desired: undefined, dataplane: undefined, seenIn: NEVER_SEEN };
      this.slots.set(key, slot);
    }
    return slot;
  }

  /** Drops a slot that holds nothing (unless the dump under way saw its key: observe must still refuse a second entry). */
  private dropIfEmpty(key: string, slot: Slot<V>): void {
    if (slot.desired === undefined && slot.dataplane === undefined && !(this.observing && slot.seenIn === this.dumpNo)) this.slots.delete(key);
  }

  // ---- desired view ----

  setDesired(key: string, value: V): void {
    const slot = this.slotFor(key);
    if (slot.desired === undefined) this.desiredCount++;
    slot.desired = value;
    this.settle(key, slot);
  }

  deleteDesired(key: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined || slot.desired === undefined) return;
    slot.desired = undefined;
    this.desiredCount--;
    this.settle(key, slot);
    this.dropIfEmpty(key, slot);
  }

  getDesired(key: string): V | undefined {
    return this.slots.get(key)?.desired;
  }

  hasDesired(key: string): boolean {
    return this.slots.get(key)?.desired !== undefined;
  }

  get desiredSize(): number {
    return this.desiredCount;
  }

  desiredEntries(): IterableIterator<[string, V]> {
    return this.desiredMap.entries();
  }

  // ---- dataplane view ----

  /**
   * The kernel now holds `value` at `key` (an operation succeeded, or a notification said so).
   * A copy of the desired value is kept as the desired value itself: at 5,000 peers the vxlan
   * device's FDB notifications of weft's own entries (they carry no port id to skip them by)
   * were a second set of 5,000 entries for good.
   */
  setDataplane(key: string, value: V): void {
    const slot = this.slotFor(key);
    const want = slot.desired;
    this.putDataplane(slot, want !== undefined && want !== value && this.equal(value, want) ? want : value);
    this.settle(key, slot);
  }

  /** The kernel no longer holds `key`. */
  deleteDataplane(key: string): void {
    const slot = this.slots.get(key);
    if (slot === undefined || slot.dataplane === undefined) return;
    this.putDataplane(slot, undefined);
    this.settle(key, slot);
    this.dropIfEmpty(key, slot);
  }

  private putDataplane(slot: Slot<V>, value: V | undefined): void {
    this.dataplaneCount += (value !== undefined ? 1 : 0) - (slot.dataplane !== undefined ? 1 : 0);
    slot.dataplane = value;
  }

  /** The dataplane view as a Map: writes to it update the pending sets like setDataplane/deleteDataplane. */
  dataplaneView(): Map<string, V> {
    return this.dataplaneMap;
  }

  /** The desired view, to read. */
  desiredView(): ReadonlyMap<string, V> {
    return this.desiredMap;
  }

  getDataplane(key: string): V | undefined {
    return this.slots.get(key)?.dataplane;
  }

  dataplaneEntries(): IterableIterator<[string, V]> {
    return this.dataplaneMap.entries();
  }

  /**
   * A fresh dump of the kernel replaces the dataplane view; every pending entry is recomputed.
   * An entry the kernel holds as desired is kept as the desired value itself, not the dump's
   * copy: at thousands of peers the view then costs nothing beside the desired one, and the
   * dump's copies die young (the idle agent's memory, docs/performance.md).
   */
  replaceDataplane(dump: ReadonlyMap<string, V>): void {
    for (const slot of this.slots.values()) slot.dataplane = undefined;
    this.dataplaneCount = 0;
    for (const [key, have] of dump) {
      const slot = this.slotFor(key);
      const want = slot.desired;
      this.putDataplane(slot, want !== undefined && (want === have || this.equal(have, want)) ? want : have);
    }
    this.updates.clear();
    this.deletions.clear();
    for (const [key, slot] of this.slots) {
      this.settle(key, slot);
      this.dropIfEmpty(key, slot);
    }
  }

  // ---- a dump read in place (the periodic resync) ----

  /** The number of the dump under way, or of the last one; each slot's seenIn says which dump last held its key. */
  private dumpNo = NEVER_SEEN;
  private observing = false;

  /**
   * A kernel dump begins; its entries follow through observe() and endObserve() ends it. The
   * result is replaceDataplane's, reached without a second set of entries: an entry the view
   * already holds as dumped costs one Map lookup and allocates nothing, so a resync that
   * finds the kernel as believed leaves no garbage behind (at 5,000 peers replaceDataplane
   * promoted the dump's 15,000 copies and a new view per table, which a full collection then
   * had to free: docs/performance.md).
   */
  beginObserve(): void {
    this.dumpNo = this.dumpNo >= MAX_DUMP_NO ? 1 : this.dumpNo + 1;
    this.observing = true;
  }

  /**
   * One entry of the dump under way. False, and nothing recorded, when this dump already gave
   * an entry under `key` (the caller files a second one under a key of its own).
   */
  observe(key: string, value: V): boolean {
    let slot = this.slots.get(key);
    if (slot !== undefined && slot.seenIn === this.dumpNo) return false;
    slot ??= this.slotFor(key);
    slot.seenIn = this.dumpNo;
    const have = slot.dataplane;
    if (have !== undefined && (have === value || this.equal(have, value))) {
      // Held as dumped; a copy (a notification's) gives way to the desired value it equals.
      const want = slot.desired;
      if (want !== undefined && want !== have && this.equal(have, want)) slot.dataplane = want;
      return true;
    }
    // As in replaceDataplane: an entry the kernel holds as desired is kept as the desired value.
    this.setDataplane(key, value);
    return true;
  }

  /** The dump is complete: entries it did not hold are gone from the kernel. */
  endObserve(): void {
    this.observing = false;
    for (const [key, slot] of this.slots) {
      if (slot.seenIn !== this.dumpNo && slot.dataplane !== undefined) {
        this.putDataplane(slot, undefined);
        this.settle(key, slot);
      }
      this.dropIfEmpty(key, slot);
    }
  }

  // ---- the difference ----

  /** key -> desired value, for entries the kernel lacks or holds differently. */
  pendingUpdates(): ReadonlyMap<string, V> {
    return this.updates;
  }

  /** key -> the kernel's value, for entries the kernel holds and we no longer want. */
  pendingDeletions(): ReadonlyMap<string, V> {
    return this.deletions;
  }

  get inSync(): boolean {
    return this.updates.size === 0 && this.deletions.size === 0;
  }

  private settle(key: string, slot: Slot<V>): void {
    const want = slot.desired;
    const have = slot.dataplane;
    if (want !== undefined) {
      this.deletions.delete(key);
      if (have === undefined || (have !== want && !this.equal(have, want))) this.updates.set(key, want);
      else this.updates.delete(key);
    } else {
      this.updates.delete(key);
      if (have !== undefined) this.deletions.set(key, have);
      else this.deletions.delete(key);
    }
  }
}
