// List-then-watch of one network's subnets prefix, kept as an in-memory map of records, and
// reported as typed changes: added, updated, deleted, each with its key and decoded record.
//
// Level-triggered underneath: after any watch error, disconnect or compaction we list again
// and report the difference between the listing and what we knew, never trusting a resumed
// stream to have replayed everything. Each value is decoded once, when it changes.
import type { Logger } from '../log.js';
import { subnetRecord, type KV, type PrefixWatch, type Store, type SubnetRecord } from '../store/store.js';
import { Backoff, RETRY } from '../backoff.js';

export type LeaseChange =
  | { type: 'added'; key: string; record: SubnetRecord }
  | { type: 'updated'; key: string; record: SubnetRecord; previous: KnownLease }
  | { type: 'deleted'; key: string; previous: KnownLease };

/**
 * What the watch remembers of a key whose record it does not keep whole (keepsRecord): enough
 * to tell a re-listed record unchanged. The record itself went to the changes, and whoever
 * needs it keeps what it needs (the peer set its peer); at 5,000 peers the whole records
 * (the value text, the decoded value, its key and KV objects) were ~0.6 KB a lease of an idle
 * agent's heap (docs/performance.md).
 */
export class LeaseMark {
  constructor(
    readonly key: string,
    readonly modRevision: number,
    /** No etcd lease attached (SubnetRecord.reserved): the lease's id itself is not kept (a 19-digit string each). */
    readonly reserved: boolean,
    /**
     * A digest of the value (valueDigest). The modRevision alone tells a rewrite within one
     * etcd history; an etcd restored from a snapshot hands out revisions again, so the same
     * key may come back at a revision we saw with another value.
     */
    readonly valueDigest: number,
  ) {}

  static of(r: SubnetRecord): LeaseMark {
    return new LeaseMark(r.kv.key, r.kv.modRevision, r.reserved, valueDigest(r.kv.value));
  }
}

/** 32-bit FNV-1a over the value's UTF-16 code units: a few hundred ns for a Flannel lease value. */
export function valueDigest(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A key as the watch knows it: its whole record, or only its mark. */
export type KnownLease = SubnetRecord | LeaseMark;

/** The record, when the watch kept it whole. */
export function wholeRecord(k: KnownLease | undefined): SubnetRecord | undefined {
  return k instanceof LeaseMark ? undefined : k;
}

/** Whether a listed record is what `k` remembers: the same revision, reservation and value. */
function sameAs(k: KnownLease, r: SubnetRecord): boolean {
  if (k instanceof LeaseMark) {
    return k.modRevision === r.kv.modRevision && k.reserved === r.reserved && k.valueDigest === valueDigest(r.kv.value);
  }
  return k.kv.modRevision === r.kv.modRevision && k.reserved === r.reserved && k.kv.value === r.kv.value;
}

export interface LeaseWatchOptions {
  /**
   * Called (synchronously, keep it cheap) after the map changed, with what changed: one change
   * per watch event, the difference against what was known for a listing.
   */
  onChanges: (changes: LeaseChange[], why: 'list' | 'event') => void;
  /** Delays before re-listing after a failure; RETRY.etcd by default. Injected for tests. */
  backoff?: Backoff;
  /** Told when contact with etcd is lost (false) and back (true). */
  onHealth?: (reachable: boolean) => void;
  /** Told of every failed etcd attempt (for metrics; logging stays once per outage). */
  onError?: (operation: 'list' | 'watch' | 'probe') => void;
  /** Wall clock, injected for tests. */
  now?: () => number;
  /** How often to check that etcd still answers (default 10 s; 0 = never). */
  probeIntervalMs?: number;
  /** How long a probe may take before etcd counts as unresponsive. */
  probeTimeoutMs?: number;
  /**
   * Which keys' records the map keeps whole; by default every key's. The others' are kept as
   * a LeaseMark (key, modRevision, reserved): the agent keeps only its own key's record,
   * which the lease keeper compares with what it wrote. Asked when a record is made, which is
   * also when its change is reported, so a key that becomes ours later is kept whole from its
   * next write on.
   */
  keepsRecord?: (key: string) => boolean;
}

/**
 * The changes that take `known` to `listed` (a key -> record map and a fresh listing). A
 * key that did not change keeps what `known` had for it, so whoever holds that can tell it
 * unchanged by identity. Unchanged means the same modRevision, reservation and value (for a
 * mark, the value's digest): within one etcd history the modRevision alone would do (every
 * write, a new etcd lease with it, moves it), but an etcd restored from a snapshot reuses
 * revisions. Lease ids are not compared (`known` may hold marks: `keep`). `known` is updated
 * in place, with what `keep` makes of each new or changed record; the changes carry the
 * record itself. Pure otherwise.
 */
export function diffListing(known: Map<string, KnownLease>, listed: readonly SubnetRecord[], keep: (r: SubnetRecord) => KnownLease = (r) => r): LeaseChange[] {
  const changes: LeaseChange[] = [];
  const seen = new Set<string>();
  for (const r of listed) {
    const key = r.kv.key;
    seen.add(key);
    const old = known.get(key);
    if (!old) {
      known.set(key, keep(r));
      changes.push({ type: 'added', key, record: r });
    } else {
      if (!sameAs(old, r)) {
        known.set(key, keep(r));
        changes.push({ type: 'updated', key, record: r, previous: old });
      }
    }
  }
  if (seen.size !== known.size) {
    for (const [key, old] of known) {
      if (!seen.has(key)) {
        known.delete(key);
        changes.push({ type: 'deleted', key, previous: old });
      }
    }
  }
  return changes;
}

export class LeaseWatch {
  /** Every key under the prefix: its whole record, or its mark (LeaseWatchOptions.keepsRecord). */
  readonly records = new Map<string, KnownLease>();
  /** The etcd revision our map reflects. */
  revision = 0;
  /** Wall-clock ms of the last event or listing (undefined before the first). */
  lastActivityAt: number | undefined;
  private watch: PrefixWatch | undefined;
  private stopped = false;
  private restarting = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private degraded = false;
  private readonly prefix: string;
  private readonly backoff: Backoff;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly network: string,
    private readonly logger: Logger,
    private readonly opts: LeaseWatchOptions,
  ) {
    this.prefix = store.layout.subnetsPrefix(network);
    this.now = opts.now ?? Date.now;
    this.backoff = opts.backoff ?? new Backoff(RETRY.etcd);
  }

  /**
   * A listing the caller just made (the agent's lease acquisition has one) becomes the map, as
   * if start() had listed: at thousands of leases, one list and decode fewer at start-up. The
   * next start() watches from its revision.
   */
  seed(listing: { records: SubnetRecord[]; revision: number }): void {
    this.load(listing.records, listing.revision);
    this.seeded = true;
  }
  private seeded = false;

  /**
   * Lists once, unless seeded (throws if etcd is unavailable), and starts watching. A retry
   * after a failure lists afresh.
   */
  async start(): Promise<void> {
    if (!this.seeded) await this.relist();
    this.seeded = false;
    await this.watchFrom(this.revision + 1);
    // Every 10 s: 6 reads a minute per agent. gRPC keepalive (10 s + 5 s) covers the watch
    // stream too; the probe also covers a connection with no stream in flight.
    const every = this.opts.probeIntervalMs ?? 10_000;
    if (every > 0) {
      // While etcd is away, probe more often, so its return is noticed within ~2 s.
      const tick = () => {
        if (this.stopped) return;
        this.probeTimer = setTimeout(() => void this.probe().finally(tick), this.degraded ? Math.min(every, 2000) : every);
        this.probeTimer.unref();
      };
      tick();
    }
  }

  /**
   * A frozen etcd (or a network that drops packets) can leave the watch stream open and
   * silent. A cheap read with a short timeout tells; once etcd answers again after a failed
   * probe, the stream cannot be trusted to have delivered everything, so we list again.
   */
  private async probe(): Promise<void> {
    if (this.stopped || this.probing) return;
    this.probing = true;
    try {
      // A key that never exists: nothing to send back but the header.
      await this.store.ping(this.prefix, this.opts.probeTimeoutMs ?? 3000);
      // Answering again: unless a re-list is already under way, start one.
      if (this.degraded && !this.restarting && this.watch) this.restart(this.watch, undefined);
    } catch (err) {
      this.opts.onError?.('probe');
      this.markDegraded(err);
    } finally {
      this.probing = false;
    }
  }

  /** One warning per outage, whichever path noticed it first. */
  private markDegraded(err: unknown): void {
    if (this.degraded || this.stopped) return;
    this.degraded = true;
    this.logger.warn('lost contact with etcd; keeping the current dataplane and retrying', { err: describe(err) });
    this.opts.onHealth?.(false);
  }

  private markHealthy(attempts: number): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.logger.info('etcd reachable again; leases re-listed and watched', { revision: this.revision, attempts });
    this.opts.onHealth?.(true);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.probeTimer) clearTimeout(this.probeTimer);
    const w = this.watch;
    this.watch = undefined;
    await w?.cancel();
  }

  private async relist(): Promise<void> {
    const { records, revision } = await this.store.listSubnets(this.network);
    this.load(records, revision);
  }

  private load(records: readonly SubnetRecord[], revision: number): void {
    const changes = diffListing(this.records, records, this.kept);
    this.revision = revision;
    this.lastActivityAt = this.now();
    this.opts.onChanges(changes, 'list');
  }

  private async watchFrom(revision: number): Promise<void> {
    const generation = ++this.generation;
    const w = await this.store.watchPrefix(
      this.prefix,
      revision,
      {
        put: (kv) => this.apply('put', kv),
        delete: (kv) => this.apply('delete', kv),
        broken: (err) => this.broken(generation, err),
      },
      { createTimeoutMs: this.opts.probeTimeoutMs ?? 3000 },
    );
    if (this.stopped) {
      await w.cancel();
      return;
    }
    this.watch = w;
  }
  /** A record as the map keeps it: whole, or its mark when keepsRecord says so. */
  private readonly kept = (r: SubnetRecord): KnownLease => {
    const keeps = this.opts.keepsRecord;
    return keeps === undefined || keeps(r.kv.key) ? r : LeaseMark.of(r);
  };

  /** Counts watches created, so that a dead watch's late report is told from the live one's. */
  private generation = 0;

  private apply(type: 'put' | 'delete', kv: KV): void {
    if (kv.modRevision <= this.revision && type === 'put') return; // already in the list
    if (kv.modRevision > this.revision) this.revision = kv.modRevision;
    this.lastActivityAt = this.now();
    const key = kv.key;
    const previous = this.records.get(key);
    let change: LeaseChange;
    if (type === 'put') {
      const record = subnetRecord(this.network, this.prefix, kv);
      this.records.set(key, this.kept(record));
      change = previous ? { type: 'updated', key, record, previous } : { type: 'added', key, record };
    } else {
      if (!previous) return;
      this.records.delete(key);
      change = { type: 'deleted', key, previous };
    }
    try {
      this.opts.onChanges([change], 'event');
    } catch (err) {
      this.logger.error('lease watch handler failed', { err: describe(err) });
    }
  }

  private broken(generation: number, err: unknown): void {
    if (generation !== this.generation || !this.watch || this.stopped) return;
    this.opts.onError?.('watch');
    this.restart(this.watch, err);
  }

  /** Drops the watch and re-lists; err is what broke it (undefined: a precautionary re-list). */
  private restart(w: PrefixWatch, err: unknown): void {
    if (this.stopped || this.restarting || this.watch !== w) return;
    this.restarting = true;
    this.watch = undefined;
    void w.cancel();
    if (err !== undefined) this.markDegraded(err);
    void this.recover();
  }

  private async recover(): Promise<void> {
    while (!this.stopped) {
      const delay = this.backoff.next();
      await new Promise((r) => setTimeout(r, delay));
      if (this.stopped) break;
      let step: 'list' | 'watch' = 'list';
      try {
        await this.relist();
        step = 'watch';
        await this.watchFrom(this.revision + 1);
        this.markHealthy(this.backoff.failures);
        this.backoff.reset();
        break;
      } catch (err) {
        // Logged once when the outage began; keep trying quietly.
        this.opts.onError?.(step);
        this.logger.debug('re-list failed', { attempt: this.backoff.failures, err: describe(err) });
      }
    }
    this.restarting = false;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
