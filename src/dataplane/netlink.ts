// A NETLINK_ROUTE socket (or another netlink family's) in the agent's own process, through the `netlink` package's native
// socket (its only native part; message encoding is ours, in rtnl.ts).
//
// Why not the package's own rtnetlink API: it encodes every message through a generic
// attribute codec and awaits one request at a time or in a window of promises; ours puts up
// to WINDOW messages in one datagram (one sendmsg), which the kernel processes in order and
// answers each with its own ACK or errno. Measured in docs/performance.md.
//
// Traps handled here (see the package notes): the socket's 'error' event must have a
// listener (without one the native callback throws and the process aborts); too many replies
// in flight overflow the receive buffer (ENOBUFS) and lose ACKs, so the window is bounded and
// every request has a deadline; a lost reply fails the request instead of hanging it.
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { ackedSeq, eachMessage, errnoOf, frame, NLM_F_MULTI, NLMSG_DONE, NLMSG_ERROR, type Message, type Request } from './rtnl.js';

const NETLINK_ROUTE = 0;
/** Messages per datagram; their ACKs (under 1 KiB each in the receive buffer) fit the 1 MiB asked for, or the 416 KiB most hosts allow. */
export const WINDOW = 256;
const DEADLINE_MS = 5_000;
export const ETIMEDOUT = osConstants.errno.ETIMEDOUT;
export const ENOBUFS = osConstants.errno.ENOBUFS;

/** The part of the package's RawNetlinkSocket we use (it mirrors dgram.Socket). */
interface RawSocket {
  on(event: 'message', fn: (msg: Buffer) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  send(msg: Buffer, options: { port?: number; groups?: number }, callback: (err?: Error) => void): void;
  close(): void;
  unref(): void;
  setRecvBufferSize(bytes: number): void;
}
type RawSocketClass = new (protocol: number, options?: object) => RawSocket;

let loaded: { Raw: RawSocketClass } | { error: string } | undefined;

/**
 * The native socket class, or why it is unavailable. `WEFT_KERNEL_CHANNEL=iproute2` forces
 * the fallback (tests, and an escape hatch on an unusual machine). Loads the raw module only:
 * the package's index pulls in every netlink family's codecs (thousands of lines), unused here.
 */
export function loadNetlink(env: NodeJS.ProcessEnv = process.env): { Raw: RawSocketClass } | { error: string } {
  if (env.WEFT_KERNEL_CHANNEL === 'iproute2') return { error: 'WEFT_KERNEL_CHANNEL=iproute2 is set' };
  if (loaded) return loaded;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('netlink/dist/raw.js') as { RawNetlinkSocket?: RawSocketClass };
    if (typeof mod.RawNetlinkSocket !== 'function') throw new Error('netlink/dist/raw.js has no RawNetlinkSocket');
    loaded = { Raw: mod.RawNetlinkSocket };
  } catch (err) {
    loaded = { error: (err as Error).message.split('\n')[0]! };
  }
  return loaded;
}

interface Pending {
  resolve: (m: Message[]) => void;
  reject: (err: Error) => void;
  parts: Message[] | undefined;
  /** A streamed dump (dumpEach): each part goes here as it arrives instead of into `parts`. */
  each?: ((m: Message) => void) | undefined;
  /** What `each` threw, if anything: the dump is read to its end, then fails with it. */
  failed?: unknown;
}

/** Thrown for a whole request that could not be answered (socket error, deadline). */
export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

/** A request/reply socket. Replies are matched by sequence number. */
export class NetlinkSocket {
  private readonly raw: RawSocket;
  private seq = 1;
  private readonly pending = new Map<number, Pending>();
  /** The window transact() waits for: refusals of its requests, by sequence number. */
  private windowFrom = 0;
  private windowTo = 0;
  private readonly windowErrors = new Map<number, number>();
  private closed = false;

  /** `protocol`: NETLINK_ROUTE, or another netlink family (nft-generation.ts uses NETLINK_NETFILTER). */
  constructor(Raw: RawSocketClass, protocol = NETLINK_ROUTE) {
    this.raw = new Raw(protocol, {});
    this.raw.unref(); // never what keeps the agent alive
    // Nothing may throw out of these listeners: they run inside the binding's native callback,
    // where an exception aborts the process.
    this.raw.on('message', (buf) => {
      try {
        eachMessage(buf, this.onReply);
      } catch (err) {
        process.emitWarning(`weft: netlink message handling failed: ${(err as Error).stack ?? String(err)}`);
      }
    });
    this.raw.on('error', (err) => {
      try {
        // ENOBUFS: replies or notifications were dropped. Fail what waits; the caller re-reads.
        this.failAll(new NetlinkError(`netlink socket: ${err.message}`, (err as { errno?: number }).errno ?? ENOBUFS));
      } catch (e) {
        process.emitWarning(`weft: netlink error handling failed: ${(e as Error).stack ?? String(e)}`);
      }
    });
  }

  setReceiveBuffer(bytes: number): void {
    try {
      this.raw.setRecvBufferSize(bytes);
    } catch {
      // capped by net.core.rmem_max; the default still works, with overflows counted as drift
    }
  }

  /**
   * This socket's netlink port id, as the kernel's replies address it (0 until the first
   * reply). The kernel's route and neighbour notifications carry the port id of the request
   * that caused them, which tells weft's own changes from anyone else's.
   */
  portId = 0;

  private readonly onReply = (m: Message): void => this.reply(m);

  private reply(m: Message): void {
    if (m.pid !== 0) this.portId = m.pid;
    if (m.type === NLMSG_ERROR) {
      const seq = ackedSeq(m) ?? m.seq;
      const p = this.pending.get(seq);
      if (!p) {
        // A refusal of a request sent without NLM_F_ACK, inside a window (see transact).
        if (seq >= this.windowFrom && seq < this.windowTo) this.windowErrors.set(seq, errnoOf(m));
        return;
      }
      this.pending.delete(seq);
      if (p.parts) {
        const errno = errnoOf(m);
        if (errno !== 0) p.reject(new NetlinkError(`dump refused: errno ${errno}`, errno));
        else if (p.failed !== undefined) p.reject(p.failed as Error);
        else p.resolve(p.parts);
      } else {
        p.resolve([m]);
      }
      return;
    }
    const p = this.pending.get(m.seq);
    if (!p) return;
    if (m.type === NLMSG_DONE) {
      this.pending.delete(m.seq);
      if (p.failed !== undefined) p.reject(p.failed as Error);
      else p.resolve(p.parts ?? []);
    } else if (p.parts && m.flags & NLM_F_MULTI) {
      if (!p.each) p.parts.push(m);
      else if (p.failed === undefined) {
        try {
          p.each(m);
        } catch (err) {
          p.failed = err;
        }
      }
    } else {
      // A single answer (RTM_GETLINK of one name), followed by no DONE.
      this.pending.delete(m.seq);
      p.resolve([m]);
    }
  }

  private failAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
  }

  private wait(seq: number, multi: boolean, each?: (m: Message) => void): Promise<Message[]> {
    return new Promise<Message[]>((resolve, reject) => this.pending.set(seq, { resolve, reject, parts: multi ? [] : undefined, each }));
  }

  private send(buf: Buffer): Promise<void> {
    if (this.closed) return Promise.reject(new NetlinkError('netlink socket is closed', osConstants.errno.EBADF));
    return new Promise((resolve, reject) =>
      this.raw.send(buf, { port: 0 }, (err) => (err ? reject(new NetlinkError(`sendmsg: ${err.message}`, (err as { errno?: number }).errno ?? 0)) : resolve())),
    );
  }

  private nextSeqs(n: number): number {
    if (this.seq + n >= 0xffffffff) this.seq = 1;
    const first = this.seq;
    this.seq += n;
    return first;
  }

  /**
   * Sends requests WINDOW at a time, each window in one datagram, and returns each request's
   * errno (0 = done), in order. The kernel handles a datagram's messages one after another and
   * answers a refused one with its errno even without NLM_F_ACK, so only a window's last
   * request asks for an ACK: when it comes, every earlier refusal has come before it, and a
   * request that drew no answer was applied (half the replies and the kernel work to make
   * them). A window whose ACK never comes (socket overflow, deadline) reports ETIMEDOUT or
   * ENOBUFS for each request: not known to be applied. Calls run one after another.
   */
  transact(reqs: readonly Request[]): Promise<number[]> {
    const run = this.transacting.then(() => this.transactNow(reqs));
    this.transacting = run.catch(() => undefined);
    return run;
  }
  private transacting: Promise<unknown> = Promise.resolve();

  private async transactNow(reqs: readonly Request[]): Promise<number[]> {
    if (reqs.length <= WINDOW) return this.window(reqs);
    const errnos: number[] = [];
    for (let start = 0; start < reqs.length; start += WINDOW) {
      for (const e of await this.window(reqs.slice(start, start + WINDOW))) errnos.push(e);
    }
    return errnos;
  }

  /**
   * One datagram: resolves each request's errno (never rejects). A plain promise settled by
   * the reply, the send's failure or the deadline, whichever comes first, rather than an
   * async function racing promises, and no timer of its own (see arm): this runs once per
   * lease event, and V8's optimizing compile of the async form (Promise.race, try/finally,
   * a timer set and cleared, closures inlined) cost the agent more CPU over its first few
   * hundred events than the events themselves.
   */
  private window(chunk: readonly Request[]): Promise<number[]> {
    const n = chunk.length;
    const seq = this.nextSeqs(n);
    const last = seq + n - 1;
    this.windowFrom = seq;
    this.windowTo = last;
    this.windowErrors.clear();
    return new Promise<number[]>((resolve) => {
      let settled = false;
      const settleWindow = (failed: number | undefined, ack: Message | undefined): void => {
        if (settled) return;
        settled = true;
        if (this.pending.get(last) === entry) this.pending.delete(last);
        if (this.inFlight === flight) {
          this.inFlight = undefined;
          this.watchdog?.unref(); // nothing waits: the timer must not keep the process alive
        }
        const errnos = new Array<number>(n);
        for (let i = 0; i < n; i++) errnos[i] = failed ?? (i === n - 1 ? errnoOf(ack!) : (this.windowErrors.get(seq + i) ?? 0));
        this.windowFrom = this.windowTo = 0;
        resolve(errnos);
      };
      const entry: Pending = {
        resolve: (m) => settleWindow(undefined, m[0]),
        reject: (err) => settleWindow(err instanceof NetlinkError && err.errno ? err.errno : ENOBUFS, undefined),
        parts: undefined,
      };
      const flight = { since: performance.now(), expire: () => settleWindow(ETIMEDOUT, undefined) };
      this.pending.set(last, entry);
      if (this.closed) return settleWindow(osConstants.errno.EBADF, undefined);
      this.inFlight = flight;
      this.arm();
      try {
        this.raw.send(frame(chunk, seq, 0, true), { port: 0 }, (err) => {
          if (err) settleWindow((err as { errno?: number }).errno || ENOBUFS, undefined);
        });
      } catch (err) {
        // the binding closed the socket after a poll error
        settleWindow((err as { errno?: number }).errno || ENOBUFS, undefined);
      }
    });
  }

  /** The window awaiting its ACK (transact runs one at a time), and how to give up on it. */
  private inFlight: { since: number; expire: () => void } | undefined;
  private watchdog: NodeJS.Timeout | undefined;

  /**
   * The deadline of the window in flight: one timer that outlives windows, referenced only
   * while a window waits, and re-armed for the window then in flight when it fires. A window
   * answered at once (every one, normally) costs no timer set or cleared.
   */
  private arm(): void {
    if (this.watchdog) {
      this.watchdog.ref();
      return;
    }
    const check = (): void => {
      this.watchdog = undefined;
      const w = this.inFlight;
      if (!w) return;
      const left = w.since + DEADLINE_MS - performance.now();
      if (left <= 0) w.expire();
      else this.watchdog = setTimeout(check, left);
    };
    this.watchdog = setTimeout(check, DEADLINE_MS);
  }

  /** One dump (or a single get): every message of the answer. Throws NetlinkError on failure. */
  request(req: Request): Promise<Message[]> {
    return this.ask(req);
  }

  /**
   * One dump, each message handed to `each` as its datagram arrives and then dropped: a dump
   * of thousands of entries (the periodic resync) then never holds them all at once, so what
   * it allocates dies young instead of being promoted and collected by a full GC. A throw from
   * `each` fails the dump once it has been read to its end.
   */
  async dumpEach(req: Request, each: (m: Message) => void): Promise<void> {
    await this.ask(req, each);
  }

  private async ask(req: Request, each?: (m: Message) => void): Promise<Message[]> {
    const seq = this.nextSeqs(1);
    const answer = this.wait(seq, true, each);
    // The answer can come before the send's own callback (the binding reads before it
    // completes writes): never leave its rejection unhandled meanwhile.
    answer.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new NetlinkError('netlink request timed out', ETIMEDOUT));
      }, DEADLINE_MS);
    });
    try {
      await this.send(frame([req], seq));
      return await Promise.race([answer, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.failAll(new NetlinkError('netlink socket closed', osConstants.errno.EBADF));
    try {
      this.raw.close();
    } catch {
      // already closed by an error
    }
  }
}
