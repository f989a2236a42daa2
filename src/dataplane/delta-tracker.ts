// Desired state against what the kernel holds, per entry, with the difference kept up to date
// as both change. Modelled on Calico Felix's DeltaTracker: a desired view, a dataplane view,
// and the pending updates (desired, not yet in the kernel as desired) and pending deletions
// (in the kernel, no longer desired). Setting one entry costs O(1); applying the kernel means
// walking the pending sets, so one lease event costs work proportional to its own entries.
// A resync replaces the dataplane view from a dump; the pending sets then say what drifted.
// Pure in-memory state: no I/O.

export class DeltaTracker<V> {
  private readonly desired = new Map<string, V>();
  private dataplane = new Map<string, V>();
  private readonly updates = new Map<string, V>();
  private readonly deletions = new Map<string, V>();

  /** `equal` tells two values apart that are not the same object (a dump's entry and ours). */
  constructor(private readonly equal: (a: V, b: V) => boolean) {}

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

  /** The kernel now holds `value` at `key` (an operation succeeded). */
  setDataplane(key: string, value: V): void {
    this.dataplane.set(key, value);
    this.settle(key);
  }

  /** The kernel no longer holds `key`. */
  deleteDataplane(key: string): void {
    if (!this.dataplane.delete(key)) return;
    this.settle(key);
  }

  getDataplane(key: string): V | undefined {
    return this.dataplane.get(key);
  }

  dataplaneEntries(): IterableIterator<[string, V]> {
    return this.dataplane.entries();
  }

  /** A fresh dump of the kernel replaces the dataplane view; every pending entry is recomputed. */
  replaceDataplane(dump: ReadonlyMap<string, V>): void {
    this.dataplane = new Map(dump);
    this.updates.clear();
    this.deletions.clear();
    for (const key of this.desired.keys()) this.settle(key);
    for (const key of this.dataplane.keys()) if (!this.desired.has(key)) this.settle(key);
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
