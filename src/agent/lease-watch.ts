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
}

export const defaultBackoff = (attempt: number): number => {
  const base = Math.min(10_000, 250 * 2 ** Math.min(attempt - 1, 6));
  return Math.round(base / 2 + Math.random() * (base / 2)); // jitter: spread reconnects
};

export class LeaseWatch {
  readonly records = new Map<string, SubnetRecord>();
  /** The etcd revision our map reflects. */
  revision = 0;
  private watcher: Watcher | undefined;
  private stopped = false;
  private restarting = false;
  private failures = 0;
  private readonly prefix: string;

  constructor(
    private readonly store: Store,
    private readonly network: string,
    private readonly logger: Logger,
    private readonly opts: LeaseWatchOptions,
  ) {
    this.prefix = store.layout.subnetsPrefix(network);
  }

  /** Lists once (throws if etcd is unavailable) and starts watching. */
  async start(): Promise<void> {
    await this.relist();
    await this.watchFrom(this.revision + 1);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const w = this.watcher;
    this.watcher = undefined;
    if (w) await w.cancel().catch(() => {});
  }

  private async relist(): Promise<void> {
    const { records, revision } = await this.store.listSubnets(this.network);
    this.records.clear();
    for (const r of records) this.records.set(r.kv.key, r);
    this.revision = revision;
    this.opts.onChange('list');
  }

  private async watchFrom(revision: number): Promise<void> {
    const w = await this.store.client.watch().prefix(this.prefix).startRevision(String(revision)).create();
    if (this.stopped) {
      await w.cancel().catch(() => {});
      return;
    }
    this.watcher = w;
    // Listener bodies stay tiny and never throw: etcd3 re-throws listener errors later.
    w.on('put', (kv) => this.safely(() => this.apply('put', kv)));
    w.on('delete', (kv) => this.safely(() => this.apply('delete', kv)));
    w.on('error', (err) => this.restart(w, err));
    w.on('disconnected', (err) => this.restart(w, err));
  }

  private apply(type: 'put' | 'delete', raw: Parameters<typeof toKV>[0]): void {
    const kv = toKV(raw);
    if (kv.modRevision <= this.revision && type === 'put') return; // already in the list
    if (type === 'put') this.records.set(kv.key, subnetRecord(this.network, this.prefix, kv));
    else this.records.delete(kv.key);
    if (kv.modRevision > this.revision) this.revision = kv.modRevision;
    this.opts.onChange('event');
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error('lease watch handler failed', { err });
    }
  }

  private restart(w: Watcher, err: unknown): void {
    if (this.stopped || this.restarting || this.watcher !== w) return;
    this.restarting = true;
    this.watcher = undefined;
    void w.cancel().catch(() => {});
    if (this.failures === 0) {
      this.logger.warn('lease watch lost; re-listing until etcd answers', { network: this.network, err: describe(err) });
    }
    void this.recover();
  }

  private async recover(): Promise<void> {
    const backoff = this.opts.backoffMs ?? defaultBackoff;
    while (!this.stopped) {
      this.failures++;
      await new Promise((r) => setTimeout(r, backoff(this.failures)));
      if (this.stopped) break;
      try {
        await this.relist();
        await this.watchFrom(this.revision + 1);
        this.logger.info('lease watch resumed', { network: this.network, revision: this.revision, attempts: this.failures });
        this.failures = 0;
        break;
      } catch {
        // Logged once when the outage began; keep trying quietly.
      }
    }
    this.restarting = false;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
