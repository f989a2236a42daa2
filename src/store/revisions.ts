// A watch on a prefix that reports only "something changed at revision N": weft serve's
// watches re-read the state at N and compare objects, level-triggered, so no event is
// interpreted on its own (etcd3 traps 2-4 in the library notes).
import { namedError } from '../api/errors.js';
import type { IWatchResponse } from 'etcd3';
import type { Store } from './store.js';

/** The revision a watch should start at has been compacted away: re-list. */
export class RevisionCompactedError extends namedError('RevisionCompactedError') {}

export interface RevisionWatch {
  cancel(): Promise<void>;
}

export interface RevisionHandlers {
  /** Called with the revisions of each batch of changes (distinct, ascending). */
  change(revisions: number[]): void;
  /** The watch is dead (compacted, cancelled, disconnected); no more calls follow. */
  error(err: Error): void;
}

/** Whether an etcd error means the requested revision is older than the compaction. */
export function isCompacted(err: unknown): boolean {
  const message = err instanceof Error ? err.message : String(err);
  return /compacted/i.test(message) || /Watcher canceled/i.test(message);
}

export async function watchRevisions(store: Store, prefix: string, fromRevision: number, on: RevisionHandlers): Promise<RevisionWatch> {
  const watcher = await store.call(() => store.client.watch().prefix(prefix).startRevision(String(fromRevision)).create());
  let dead = false;
  const fail = (err: Error) => {
    if (dead) return;
    dead = true;
    void watcher.cancel().catch(() => undefined);
    try {
      on.error(isCompacted(err) ? new RevisionCompactedError(`revision ${fromRevision} has been compacted`) : err);
    } catch {
      // the handler only enqueues; nothing here may crash the client's stream
    }
  };
  // Listeners right after create(): an unhandled watcher error crashes the process.
  watcher.on('error', (err: Error) => fail(err));
  watcher.on('disconnected', () => fail(new Error('the watch on etcd was disconnected')));
  watcher.on('data', (res: IWatchResponse) => {
    if (dead || res.events.length === 0) return;
    const revisions = [...new Set(res.events.map((e) => Number(e.kv.mod_revision)))].sort((a, b) => a - b);
    try {
      on.change(revisions);
    } catch (err) {
      fail(err as Error);
    }
  });
  return {
    cancel: async () => {
      dead = true;
      await watcher.cancel().catch(() => undefined);
    },
  };
}
