// Desired state against what the kernel holds, per entry, with the difference kept up to date
// as both change. Modelled on Calico Felix's DeltaTracker: a desired view, a dataplane view,
// and the pending updates (desired, not yet in the kernel as desired) and pending deletions
// (in the kernel, no longer desired). Setting one entry costs O(1); applying the kernel means
// walking the pending sets, so one lease event costs work proportional to its own entries.
// A resync replaces the dataplane view from a dump; the pending sets then say what drifted.
// Pure in-memory state: no I/O.

/**
 * The dataplane view as a Map whose writes keep the tracker's pending sets right, so code
 * that keeps a belief of the kernel in a Map (a kernel notification's handler) can write to
 * it directly.
 */
class DataplaneView<V> extends Map<string, V> {
  constructor(
    private readonly changed: (key: string) => void,
    /** The value to keep for `value` at `key`: the desired one when they are equal. */
    private readonly canonical: (key: string, value: V) => V,
  ) {
    super();
  }
  /** An entry from a dump, without settling it (the caller settles them all). */
  load(key: string, value: V): void {
    super.set(key, value);
  }
  /** The same value in another object (the desired one): nothing to settle. */
  swap(key: string, value: V): void {
    super.set(key, value);
  }
  override set(key: string, value: V): this {
    // A notification's copy of an entry weft wants is kept as the desired value, as a dump's
    // is: at 5,000 peers the vxlan device's FDB notifications of weft's own entries (they
    // carry no port id to skip them by) were a second set of 5,000 entries for good.
    super.set(key, this.canonical(key, value));
    this.changed(key);
    return this;
  }
  override delete(key: string): boolean {
    if (!super.delete(key)) return false;
    this.changed(key);
    return true;
  }
  override clear(): void {
    const keys = [...this.keys()];
    super.clear();
    for (const k of keys) this.changed(k);
  }
}

export class DeltaTracker<V> {
  private readonly desired = new Map<string, V>();
  private dataplane = this.newView();
  private readonly updates = new Map<string, V>();
  private readonly deletions = new Map<string, V>();

  /** `equal` tells two values apart that are not the same object (a dump's entry and ours). */
  constructor(private readonly equal: (a: V, b: V) => boolean) {}

  private newView(): DataplaneView<V> {
    return new DataplaneView<V>(
      (key) => this.settle(key),
      (key, value) => {
        const want = this.desired.get(key);
        return want !== undefined && want !== value && this.equal(value, want) ? want : value;
      },
    );
  }

  // ---- desired view ----

  setDesired(key: string, value: V): void {
    this.desired.set(key, value);
    this.settle(key);
  }

  deleteDesired(key: string): void {
    if (!this.desired.delete(key)) return;
    this.settle(key);
  }

  getDesired(key: string): V | undefined {
    return this.desired.get(key);
  }

  hasDesired(key: string): boolean {
    return this.desired.has(key);
  }

  get desiredSize(): number {
    return this.desired.size;
  }

  desiredEntries(): IterableIterator<[string, V]> {
    return this.desired.entries();
  }

  // ---- dataplane view ----

  /** The kernel now holds `value` at `key` (an operation succeeded, or a notification said so). */
  setDataplane(key: string, value: V): void {
    this.dataplane.set(key, value);
  }

  /** The kernel no longer holds `key`. */
  deleteDataplane(key: string): void {
    this.dataplane.delete(key);
  }

  /** The dataplane view as a Map: writes to it update the pending sets like setDataplane/deleteDataplane. */
  dataplaneView(): Map<string, V> {
    return this.dataplane;
  }

  /** The desired view, to read. */
  desiredView(): ReadonlyMap<string, V> {
    return this.desired;
  }

  getDataplane(key: string): V | undefined {
    return this.dataplane.get(key);
  }

  dataplaneEntries(): IterableIterator<[string, V]> {
    return this.dataplane.entries();
  }

  /**
   * A fresh dump of the kernel replaces the dataplane view; every pending entry is recomputed.
   * An entry the kernel holds as desired is kept as the desired value itself, not the dump's
   * copy: at thousands of peers the view then costs a Map, not a second set of entries, and
   * the dump's copies die young (the idle agent's memory, docs/performance.md).
   */
  replaceDataplane(dump: ReadonlyMap<string, V>): void {
    const view = this.newView();
    for (const [key, have] of dump) {
      const want = this.desired.get(key);
      view.load(key, want !== undefined && (want === have || this.equal(have, want)) ? want : have);
    }
    this.dataplane = view;
    this.updates.clear();
    this.deletions.clear();
    for (const key of this.desired.keys()) this.settle(key);
    for (const key of this.dataplane.keys()) if (!this.desired.has(key)) this.settle(key);
  }

  // ---- a dump read in place (the periodic resync) ----

  /** Which dump last saw each key of the dataplane view (see observe). */
  private readonly seenIn = new Map<string, number>();
  private dumpNo = 0;

  /**
   * A kernel dump begins; its entries follow through observe() and endObserve() ends it. The
   * result is replaceDataplane's, reached without a second set of entries: an entry the view
   * already holds as dumped costs two Map lookups and allocates nothing, so a resync that
   * finds the kernel as believed leaves no garbage behind (at 5,000 peers replaceDataplane
   * promoted the dump's 15,000 copies and a new view per table, which a full collection then
   * had to free: docs/performance.md).
   */
  beginObserve(): void {
    this.dumpNo = (this.dumpNo + 1) | 0;
  }

  /**
   * One entry of the dump under way. False, and nothing recorded, when this dump already gave
   * an entry under `key` (the caller files a second one under a key of its own).
   */
  observe(key: string, value: V): boolean {
    if (this.seenIn.get(key) === this.dumpNo) return false;
    this.seenIn.set(key, this.dumpNo);
    const have = this.dataplane.get(key);
    if (have !== undefined && (have === value || this.equal(have, value))) {
      // Held as dumped; a copy (a notification's) gives way to the desired value it equals.
      const want = this.desired.get(key);
      if (want !== undefined && want !== have && this.equal(have, want)) this.dataplane.swap(key, want);
      return true;
    }
    // As in replaceDataplane: an entry the kernel holds as desired is kept as the desired value.
    this.dataplane.set(key, value);
    return true;
  }

  /** The dump is complete: entries it did not hold are gone from the kernel. */
  endObserve(): void {
    for (const key of this.dataplane.keys()) if (this.seenIn.get(key) !== this.dumpNo) this.dataplane.delete(key);
    for (const [key, n] of this.seenIn) if (n !== this.dumpNo) this.seenIn.delete(key);
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

  private settle(key: string): void {
    const want = this.desired.get(key);
    const have = this.dataplane.get(key);
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
