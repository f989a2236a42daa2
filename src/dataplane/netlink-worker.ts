// A second netlink request socket, in a worker thread, for bulk plans (the first pass at
// start: 15,000 requests at 5,000 peers).
//
// Why a thread: the kernel does a request's work inside the sendmsg that carries it, so on the
// agent's own socket the kernel's ~0.6 s of route, neighbour and FDB insertion at 5,000 peers
// runs on the agent's one JavaScript thread, after the whole desired model has been built.
// From this socket it runs on the machine's other core while the agent's thread models and
// encodes the next chunk of peers (converger.ts, convergeInChunks). docs/performance.md has
// the measurements.
//
// The worker runs this same module (the compiled one; see workerUrl) and answers each batch of
// requests with NetlinkSocket.transact's errnos: the same windows, ACK rule and deadlines as the
// agent's own socket. Requests cross the thread boundary packed in one transferred buffer. A
// batch can come in two rounds, the second's requests each depending on up to two of the
// first's (a route on its neighbour and FDB entry): the thread leaves out those whose
// dependency was refused and sends the rest at once, rather than waiting for the agent's busy
// thread to decide (measured: 5,000 peers 840-880 ms that way, against 600).
//
// The thread's socket is open only while it has batches: the binding aborts the process when
// a socket of a thread being torn down (at exit) is still open.
// Anything that goes wrong with the thread (it cannot start, it dies) fails the batch with
// ENOBUFS for each request ("not known to be applied"), which makes the converger re-read the
// kernel, and later batches use the agent's own socket.
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads';
import { ENOBUFS, loadNetlink, NetlinkSocket } from './netlink.js';
import type { Request } from './rtnl.js';

/** What the worker is told at start. */
interface WorkerInit {
  role: 'weft-netlink-worker';
}

/** One batch of requests, packed: bodies back to back, each request's type, flags and body end. */
interface Packed {
  id: number;
  types: Uint16Array;
  flags: Uint16Array;
  ends: Uint32Array;
  bodies: Uint8Array;
  rounds?: Rounds;
}

/**
 * Requests from `split` on are a second round: the j-th of them depends on the first-round
 * requests deps[2j] and deps[2j+1] (-1: none), and is left out (errno NOT_SENT) when one of
 * them was refused.
 */
export interface Rounds {
  split: number;
  deps: Int32Array;
}

/** Tells the thread to exit once its batches are done. */
const STOP = 'stop';

/** The errno of a second-round request left out because its dependency was refused. */
export const NOT_SENT = -1;

interface Answer {
  id: number;
  errnos: number[];
}

export function pack(id: number, reqs: readonly Request[], rounds?: Rounds): Packed {
  const types = new Uint16Array(reqs.length);
  const flags = new Uint16Array(reqs.length);
  const ends = new Uint32Array(reqs.length);
  let total = 0;
  for (const r of reqs) total += r.body.length;
  const bodies = new Uint8Array(total);
  let off = 0;
  reqs.forEach((r, i) => {
    types[i] = r.type;
    flags[i] = r.flags;
    bodies.set(r.body, off);
    off += r.body.length;
    ends[i] = off;
  });
  return { id, types, flags, ends, bodies, ...(rounds ? { rounds } : {}) };
}

export function unpack(p: Packed): Request[] {
  const reqs: Request[] = [];
  const buf = Buffer.from(p.bodies.buffer, p.bodies.byteOffset, p.bodies.byteLength);
  let start = 0;
  for (let i = 0; i < p.types.length; i++) {
    const end = p.ends[i]!;
    reqs.push({ type: p.types[i]!, flags: p.flags[i]!, body: buf.subarray(start, end) });
    start = end;
  }
  return reqs;
}

/**
 * The compiled module's URL: next to this one when unbundled (dist/dataplane/), and under
 * dataplane/ beside the bundle (dist/weft-agent.cjs, whose URL import.meta.url is there).
 * Under vitest (src/*.ts) there is no compiled module; the worker then fails to start and the
 * agent's own socket does the work.
 */
function workerUrl(): URL {
  const here = import.meta.url;
  return new URL(here.endsWith('.cjs') ? './dataplane/netlink-worker.js' : './netlink-worker.js', here);
}

/** Close the thread after this long without a batch: an idle agent keeps no second V8 heap. */
const IDLE_MS = 2_000;

/** The agent's side: transact() as NetlinkSocket's, run in the worker thread. */
export class NetlinkWorker {
  private worker: Worker | undefined;
  private failed = false;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (errnos: number[]) => void; count: number }>();
  private idle: NodeJS.Timeout | undefined;

  /** Starts the thread now (it loads while the agent does other work); false when it cannot be used. */
  start(): boolean {
    if (this.failed) return false;
    if (this.worker) return true;
    let w: Worker;
    try {
      w = new Worker(workerUrl(), { workerData: { role: 'weft-netlink-worker' } satisfies WorkerInit });
    } catch {
      this.failed = true;
      return false;
    }
    this.worker = w;
    w.unref();
    w.on('message', (a: Answer) => {
      const p = this.waiting.get(a.id);
      this.waiting.delete(a.id);
      p?.resolve(a.errnos);
      if (this.waiting.size === 0) w.unref();
      this.armIdle();
    });
    const lost = () => {
      if (this.worker !== w) return;
      this.worker = undefined;
      this.failed = true;
      for (const p of this.waiting.values()) p.resolve(new Array<number>(p.count).fill(ENOBUFS));
      this.waiting.clear();
    };
    w.on('error', lost);
    w.on('exit', lost);
    this.armIdle();
    return true;
  }

  /** Whether batches can go to the thread (it started, or can be started, and has not failed). */
  get usable(): boolean {
    return !this.failed;
  }

  /**
   * Each request's errno (0 = done), as NetlinkSocket.transact; ENOBUFS for all when the
   * thread fails. With `rounds`, second-round requests whose dependency was refused are left
   * out (NOT_SENT).
   */
  transact(reqs: readonly Request[], rounds?: Rounds): Promise<number[]> {
    if (!this.start()) return Promise.resolve(new Array<number>(reqs.length).fill(ENOBUFS));
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const id = this.nextId++;
    const p = pack(id, reqs, rounds);
    // While it has batches the thread keeps the process alive: an agent exiting meanwhile
    // waits for them (each window has its deadline) rather than tear the thread down with its
    // socket open.
    this.worker!.ref();
    return new Promise<number[]>((resolve) => {
      this.waiting.set(id, { resolve, count: reqs.length });
      this.worker!.postMessage(p, [p.types.buffer, p.flags.buffer, p.ends.buffer, p.bodies.buffer, ...(rounds ? [rounds.deps.buffer] : [])] as ArrayBuffer[]);
    });
  }

  private armIdle(): void {
    if (this.waiting.size > 0) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.close(), IDLE_MS);
    this.idle.unref();
  }

  /**
   * Ends the thread; a later transact() starts it again. The thread is asked to stop rather
   * than terminated: it closes its socket once its batches are done, then exits (a thread
   * terminated with its socket open can abort the process).
   */
  close(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    const w = this.worker;
    this.worker = undefined;
    for (const p of this.waiting.values()) p.resolve(new Array<number>(p.count).fill(ENOBUFS));
    this.waiting.clear();
    w?.postMessage(STOP);
  }
}

/** Sends a batch (in its rounds) and returns each request's errno. */
export async function sendRounds(sock: Pick<NetlinkSocket, 'transact'>, reqs: readonly Request[], rounds: Rounds | undefined): Promise<number[]> {
  if (!rounds) return sock.transact(reqs);
  const first = await sock.transact(reqs.slice(0, rounds.split));
  const refused = (k: number) => k >= 0 && first[k] !== 0;
  const errnos = [...first];
  const send: Request[] = [];
  const at: number[] = [];
  for (let i = rounds.split; i < reqs.length; i++) {
    const j = i - rounds.split;
    errnos.push(NOT_SENT);
    if (refused(rounds.deps[2 * j]!) || refused(rounds.deps[2 * j + 1]!)) continue;
    send.push(reqs[i]!);
    at.push(i);
  }
  const second = await sock.transact(send);
  at.forEach((i, k) => (errnos[i] = second[k]!));
  return errnos;
}

/** The thread's side: batches answered in order, on a socket open while there are any. */
function serve(port: MessagePort): void {
  const nl = loadNetlink();
  if (!('Raw' in nl)) throw new Error(nl.error);
  const Raw = nl.Raw;
  let sock: NetlinkSocket | undefined;
  let busy = 0;
  let stopping = false;
  const stopIfIdle = () => {
    if (stopping && busy === 0) port.close();
  };
  port.on('message', (p: Packed | typeof STOP) => {
    if (p === STOP) {
      stopping = true;
      return stopIfIdle();
    }
    busy++;
    if (!sock) {
      sock = new NetlinkSocket(Raw);
      sock.setReceiveBuffer(1 << 20);
    }
    sendRounds(sock, unpack(p), p.rounds).then(
      (errnos) => port.postMessage({ id: p.id, errnos } satisfies Answer),
      () => port.postMessage({ id: p.id, errnos: new Array<number>(p.types.length).fill(ENOBUFS) } satisfies Answer),
    ).finally(() => {
      if (--busy === 0) {
        sock?.close();
        sock = undefined;
        stopIfIdle();
      }
    });
  });
}

if (!isMainThread && parentPort && (workerData as WorkerInit | undefined)?.role === 'weft-netlink-worker') serve(parentPort);
