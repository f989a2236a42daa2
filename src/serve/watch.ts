// watch=1: a stream of ADDED / MODIFIED / DELETED events, level-triggered. The state at the
// client's resourceVersion (an etcd revision) is read, etcd is watched from the next
// revision, and after each change the state at that revision is read again and compared
// object by object. A compacted revision ends the stream with a 410 Expired ERROR event so
// clients re-list.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Printable } from '../api/types.js';
import { RevisionCompactedError, watchRevisions, type RevisionWatch } from '../store/revisions.js';
import type { ServeContext } from './context.js';
import { identity, type KindList, type ServedResource } from './kinds.js';
import { readState, selectorsOf } from './read.js';
import { ApiError, badRequest, statusOf, toApiError } from './status.js';
import { includeObjectOf, tableOf, wantsTable } from './tables.js';

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** Revisions waiting to be compared beyond which only the latest is (a client that lags). */
const MAX_BACKLOG = 64;

/** What must differ for MODIFIED: not a lease's countdown or its age, which move every second. */
function fingerprint(o: Printable): string {
  if (o.kind !== 'Lease') return JSON.stringify(o);
  const { expiry: _e, ...spec } = o.spec;
  const { creationTimestamp: _c, ...metadata } = o.metadata;
  return JSON.stringify({ ...o, spec, metadata });
}

/** Columns whose cells change with the clock alone. */
const CLOCK_COLUMNS = new Set(['AGE', 'EXPIRES', 'LAST-SYNC']);

/**
 * A table row without its clock columns: a watcher of Tables also sees a lease change when
 * only its holder's status does (READY, PEERS), which is not part of the Lease object.
 */
function rowFingerprint(list: KindList, i: number): string {
  return JSON.stringify(list.cells.rows[i]!.filter((_, c) => !CLOCK_COLUMNS.has(list.cells.header[c]!)));
}

interface Seen {
  list: KindList;
  index: Map<string, number>;
}

function seen(list: KindList, keep: (o: Printable) => boolean): Seen {
  const index = new Map<string, number>();
  list.items.forEach((o, i) => {
    if (keep(o)) index.set(identity(o), i);
  });
  return { list, index };
}

export async function handleWatch(ctx: ServeContext, r: ServedResource, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const filter = selectorsOf(url, r);
  const table = wantsTable(req.headers.accept);
  const include = includeObjectOf(url.searchParams.get('includeObject'));
  const rvText = url.searchParams.get('resourceVersion');
  if (rvText && !/^\d+$/.test(rvText)) throw badRequest(`resourceVersion must be an etcd revision (a number), got ${JSON.stringify(rvText)}`);
  const timeoutText = url.searchParams.get('timeoutSeconds');
  const timeoutMs = timeoutText && /^\d+$/.test(timeoutText) ? Number(timeoutText) * 1000 : undefined;

  // From a given revision: compare against the state then. Without one (or "0"): every
  // current object is ADDED first.
  const from = rvText && rvText !== '0' ? Number(rvText) : undefined;
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache' });
  res.flushHeaders();
  const send = (type: EventType, list: KindList, i: number, rv: string) => {
    const o = list.items[i]!;
    const object = table ? tableOf(list, [i], o.metadata.resourceVersion ?? rv, include) : o;
    res.write(JSON.stringify({ type, object }) + '\n');
  };
  let prev: Seen = { list: { items: [], cells: { header: [], rows: [] }, narrow: 0 }, index: new Map() };
  let start = 0;

  let watch: RevisionWatch | undefined;
  let done = false;
  let resolveDone!: () => void;
  const finished = new Promise<void>((resolve) => (resolveDone = resolve));
  const stop = () => {
    if (done) return;
    done = true;
    void watch?.cancel();
    res.end();
    resolveDone();
  };
  const fail = (err: unknown) => {
    if (done) return;
    const api = err instanceof ApiError ? err : toApiError(err, r);
    res.write(JSON.stringify({ type: 'ERROR', object: statusOf(api) }) + '\n');
    stop();
  };
  req.on('close', stop);
  ctx.closing.addEventListener('abort', stop, { once: true });
  const timer = timeoutMs !== undefined ? setTimeout(stop, timeoutMs) : undefined;
  void finished.then(() => timer && clearTimeout(timer));

  // One comparison per changed revision, in order, so an object created and deleted between
  // two reads is still seen; a backlog past MAX_BACKLOG collapses into its latest revision.
  const pending: number[] = [];
  let running = false;
  const compare = async (revision: number | undefined) => {
    const state = await readState(ctx, r, revision);
    const next = seen(state.list, filter);
    const rv = String(state.snap.revision);
    for (const [id, i] of prev.index) if (!next.index.has(id)) send('DELETED', prev.list, i, rv);
    for (const [id, i] of next.index) {
      const before = prev.index.get(id);
      if (before === undefined) send('ADDED', next.list, i, rv);
      else if (
        fingerprint(prev.list.items[before]!) !== fingerprint(next.list.items[i]!) ||
        (table && rowFingerprint(prev.list, before) !== rowFingerprint(next.list, i))
      ) {
        send('MODIFIED', next.list, i, rv);
      }
    }
    prev = next;
    return state.snap.revision;
  };
  const drain = async () => {
    if (running) return;
    running = true;
    try {
      while (pending.length && !done) {
        if (pending.length > MAX_BACKLOG) pending.splice(0, pending.length - 1);
        await compare(pending.shift()!);
      }
    } catch (err) {
      fail(err);
    } finally {
      running = false;
    }
  };

  try {
    if (from === undefined) {
      start = (await compare(undefined)) + 1;
    } else {
      // As the apiserver does: a 200 stream whose first event is the ERROR (410 when compacted).
      try {
        prev = seen((await readState(ctx, r, from)).list, filter);
      } catch (err) {
        throw /compacted/i.test(String((err as Error).message)) ? new RevisionCompactedError(`revision ${from} has been compacted`) : err;
      }
      start = from + 1;
    }
    if (done) return;
    watch = await watchRevisions(ctx.rs.store, ctx.rs.layout.prefix + '/', start, {
      change: (revisions) => {
        pending.push(...revisions);
        void drain();
      },
      error: (err) => fail(err),
    });
    if (done) void watch.cancel();
  } catch (err) {
    fail(err);
  }
  await finished;
}
