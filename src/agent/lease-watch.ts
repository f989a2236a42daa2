// List-then-watch of one network's subnets prefix, kept as an in-memory map of records.
//
// Level-triggered by design: the watch only tells us *that* something changed; after any
// watch error, disconnect or compaction we list again from scratch and carry on from the
// list's revision, never trusting a resumed stream to have replayed everything.
import type { Watcher } from 'etcd3';
import type { Logger } from '../log.js';
import { subnetRecord, toKV, type Store, type SubnetRecord } from '../store/store.js';

export interface LeaseWatchOptions {
  /** Called (synchronously, keep it cheap) after the map changed. */
  onChange: (why: 'list' | 'event') => void;
  /** Backoff before re-listing after a failure; attempt starts at 1. Injected for tests. */
  backoffMs?: (attempt: number) => number;
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
}

/** 250 ms doubling to 3 s, with jitter: a returning etcd is noticed within ~3 s, cheaply. */
export const defaultBackoff = (attempt: number): number => {
  const base = Math.min(3_000, 250 * 2 ** Math.min(attempt - 1, 6));
  return Math.round(base / 2 + Math.random() * (base / 2)); // jitter: spread reconnects
};

export class LeaseWatch {
  readonly records = new Map<string, SubnetRecord>();
  /** The etcd revision our map reflects. */
  revision = 0;
  /** Wall-clock ms of the last event or listing (undefined before the first). */
  lastActivityAt: number | undefined;
  private watcher: Watcher | undefined;
  private stopped = false;
  private restarting = false;
  private failures = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private degraded = false;
  private readonly prefix: string;

  constructor(
    private readonly store: Store,
    private readonly network: string,
    private readonly logger: Logger,
    private readonly opts: LeaseWatchOptions,
  ) {
    this.prefix = store.layout.subnetsPrefix(network);
    this.now = opts.now ?? Date.now;
  }
  private readonly now: () => number;

  /**
   * Lists once (throws if etcd is unavailable) and starts watching. A listing the caller
   * just made (the agent's lease acquisition has one) can seed the map instead: at thousands
   * of leases, one list and decode fewer at start-up.
   */
  async start(seed?: { records: SubnetRecord[]; revision: number }): Promise<void> {
    if (seed) this.load(seed.records, seed.revision);
    else await this.relist();
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
    const timeout = this.opts.probeTimeoutMs ?? 3000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        // Member-local (serializable) and for a key that never exists: the cheapest read etcd
        // serves. Only the connection is in question here, not the cluster's consensus.
        this.store.call(() => this.store.client.get(this.prefix).serializable(true).exec()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`etcd did not answer within ${timeout} ms`)), timeout);
        }),
      ]);
      // Answering again: unless a re-list is already under way, start one.
      if (this.degraded && !this.restarting && this.watcher) this.restart(this.watcher, undefined);
    } catch (err) {
      this.opts.onError?.('probe');
      this.markDegraded(err);
    } finally {
      clearTimeout(timer);
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
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.cancel().catch(() => {});
  }

  private async relist(): Promise<void> {
    const { records, revision } = await this.store.listSubnets(this.network);
    this.load(records, revision);
  }

  private load(records: SubnetRecord[], revision: number): void {
    this.records.clear();
    for (const r of records) this.records.set(r.kv.key, r);
    this.revision = revision;
    this.lastActivityAt = this.now();
    this.opts.onChange('list');
  }

  private async watchFrom(revision: number): Promise<void> {
    // Creating a watch has no deadline of its own; on a half-dead connection it can wait
    // forever, and then nothing would ever re-list. Bound it and retry like any failure.
    const creating = this.store.client.watch().prefix(this.prefix).startRevision(String(revision)).create();
    let timer: NodeJS.Timeout | undefined;
    let w: Watcher;
    try {
      w = await Promise.race([
        creating,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('creating the watch timed out')), this.opts.probeTimeoutMs ?? 3000);
        }),
      ]);
    } catch (err) {
      void creating.then((late) => late.cancel()).catch(() => {});
      throw err;
    } finally {
      clearTimeout(timer);
    }
    if (this.stopped) {
      await w.cancel().catch(() => {});
      return;
    }
    this.watcher = w;
    // Listener bodies stay tiny and never throw: etcd3 re-throws listener errors later.
    w.on('put', (kv) => this.safely(() => this.apply('put', kv)));
    w.on('delete', (kv) => this.safely(() => this.apply('delete', kv)));
    w.on('error', (err) => this.broken(w, err));
    w.on('disconnected', (err) => this.broken(w, err));
  }

  private apply(type: 'put' | 'delete', raw: Parameters<typeof toKV>[0]): void {
    const kv = toKV(raw);
    if (kv.modRevision <= this.revision && type === 'put') return; // already in the list
    if (type === 'put') this.records.set(kv.key, subnetRecord(this.network, this.prefix, kv));
    else this.records.delete(kv.key);
    if (kv.modRevision > this.revision) this.revision = kv.modRevision;
    this.lastActivityAt = this.now();
    this.opts.onChange('event');
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error('lease watch handler failed', { err });
    }
  }

  private broken(w: Watcher, err: unknown): void {
    if (this.watcher === w && !this.stopped) this.opts.onError?.('watch');
    this.restart(w, err);
  }

  /** Drops the watch and re-lists; err is what broke it (undefined: a precautionary re-list). */
  private restart(w: Watcher, err: unknown): void {
    if (this.stopped || this.restarting || this.watcher !== w) return;
    this.restarting = true;
    this.watcher = undefined;
    void w.cancel().catch(() => {});
    if (err !== undefined) this.markDegraded(err);
    void this.recover();
  }

  private async recover(): Promise<void> {
    const backoff = this.opts.backoffMs ?? defaultBackoff;
    while (!this.stopped) {
      this.failures++;
      await new Promise((r) => setTimeout(r, backoff(this.failures)));
      if (this.stopped) break;
      let step: 'list' | 'watch' = 'list';
      try {
        await this.relist();
        step = 'watch';
        await this.watchFrom(this.revision + 1);
        this.markHealthy(this.failures);
        this.failures = 0;
        break;
      } catch (err) {
        // Logged once when the outage began; keep trying quietly.
        this.opts.onError?.(step);
        this.logger.debug('re-list failed', { attempt: this.failures, err: describe(err) });
      }
    }
    this.restarting = false;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
