// The kernel's change notifications (links, addresses, routes, neighbours, FDB entries), read
// from one long-lived `rtmon` (iproute2) that writes the raw rtnetlink messages it receives to
// a FIFO: one process for the agent's lifetime, never one per change.
//
// Why not a notification socket in the agent's own process, like the request socket: the
// `netlink` binding aborts the whole process when a socket overflows (libuv reports the
// socket's ENOBUFS as a poll error, and the binding's handler for it throws inside native
// code). A request socket cannot overflow (weft bounds what it has in flight); a notification
// socket can, whenever something on the host changes thousands of entries at once (a device
// with 5,000 peers deleted by hand). rtmon reports the overflow and goes on; weft then
// re-reads the kernel. If rtmon is missing or keeps failing, the periodic resync remains.
//
// rtmon is killed when the agent exits, and runs under util-linux's `setpriv --pdeathsig
// KILL` so that the kernel kills it when the agent is SIGKILLed too. Without setpriv it
// outlives a SIGKILLed agent until the kernel's next notification, whose write into the FIFO
// (no reader left) ends it with SIGPIPE.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { constants, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket, type OnReadOpts, type SocketConstructorOpts } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Backoff, RETRY } from '../backoff.js';
import type { Logger } from '../log.js';
import type { Message } from './rtnl.js';

const HDR = 16;
/** rtmon's own records between messages (a timestamp); not a kernel notification. */
const NLMSG_TSTAMP = 15;

const EMPTY = Buffer.alloc(0);

/** Splits a byte stream into netlink messages, keeping a partial one for the next chunk. */
export class MessageStream {
  private pending = EMPTY;

  /**
   * Hands each whole message so far to `each`, synchronously: a message's body is a view of
   * `chunk` (or of a copy of an earlier partial message), valid only until `each` returns, so
   * the caller may read into the same buffer again afterwards. A partial message at the end is
   * copied. Throws on a length that cannot be right (the stream is then useless).
   */
  push(chunk: Buffer, each: (m: Message) => void): void {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    while (buf.length - off >= HDR) {
      const len = buf.readUInt32LE(off);
      if (len < HDR || len > 1 << 20) throw new Error(`bad netlink message length ${len} in the notification stream`);
      if (buf.length - off < len) break;
      const type = buf.readUInt16LE(off + 4);
      if (type !== NLMSG_TSTAMP) each({ type, flags: buf.readUInt16LE(off + 6), seq: buf.readUInt32LE(off + 8), pid: buf.readUInt32LE(off + 12), body: buf.subarray(off + HDR, off + len) });
      off = Math.min(off + ((len + 3) & ~3), buf.length);
    }
    this.pending = off < buf.length ? Buffer.from(buf.subarray(off)) : EMPTY;
  }
}

/** rtmon's reads land here, one at a time (see start): a FIFO holds 64 KiB. */
const READ_BUFFER = 64 * 1024;

export interface WatchHandlers {
  message(m: Message): void;
  /** Notifications may have been missed (overflow, or the reader restarted): re-read the kernel. */
  lost(): void;
}

/** A supervised rtmon: restarted with a growing delay when it exits. */
export class KernelWatch {
  private child: ChildProcess | undefined;
  private stream: Socket | undefined;
  private dir: string | undefined;
  private stopped = false;
  private readonly backoff = new Backoff(RETRY.kernelWatch);
  private restarts = 0;
  private timer: NodeJS.Timeout | undefined;
  private saidUnavailable = false;

  constructor(
    private readonly handlers: WatchHandlers,
    private readonly log: Logger,
    private readonly command = 'rtmon',
  ) {
    this.start();
  }

  private start(): void {
    if (this.stopped) return;
    let dir: string;
    try {
      dir = mkdtempSync(join(tmpdir(), 'weft-watch-'));
    } catch (err) {
      return this.failed(`cannot make a directory for the notification FIFO: ${(err as Error).message}`);
    }
    this.dir = dir;
    const fifo = join(dir, 'rtnl');
    execFile('mkfifo', ['-m', '600', fifo], (err) => {
      if (err) return this.failed(`mkfifo: ${err.message}`);
      if (this.stopped) return this.cleanup();
      // Opened read-write and non-blocking: the open does not wait for rtmon, the read end never
      // sees an end of file while we hold it, and reads go through the event loop (epoll), not
      // a thread of libuv's pool blocked on a FIFO.
      // Each read goes straight to onRead in one reused buffer (net's `onread`), not through a
      // Readable stream: its machinery (a chunk per read, 'data' events, a tick to read more)
      // ran for every notification, three per lease event, and was most of this watch's cost.
      let stream: Socket;
      const messages = new MessageStream();
      let first = true;
      let child: ChildProcess | undefined;
      const onRead = (n: number, buf: Uint8Array): boolean => {
        if (first) {
          first = false;
          // rtmon listens now (its first output is the dump it makes after subscribing). Until
          // now nobody did, at the first start too (the agent starts watching after its first
          // pass): anything may have changed meanwhile.
          this.restarts++;
          this.handlers.lost();
          this.backoff.reset();
        }
        try {
          messages.push((buf as Buffer).subarray(0, n), this.deliver);
        } catch (e) {
          child?.kill();
          this.failed((e as Error).message);
        }
        return true;
      };
      try {
        // Node's Socket takes `onread` as its connect() does; @types/node lists it for connect() only.
        const opts: SocketConstructorOpts & { onread: OnReadOpts } = {
          fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK),
          readable: true,
          writable: false,
          onread: { buffer: readBuffer(), callback: onRead },
        };
        stream = new Socket(opts);
      } catch (e) {
        return this.failed(`opening ${fifo}: ${(e as Error).message}`);
      }
      this.stream = stream;
      stream.unref();
      const [cmd, ...args] = [...diesWithParent(), this.command, 'file', fifo];
      child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      this.child = child;
      child.unref();
      child.on('error', (e) => this.failed(`${this.command}: ${e.message}`));
      child.stderr!.on('data', (d: Buffer) => {
        // "netlink receive error No buffer space available (105)": it dropped notifications and goes on.
        if (/No buffer space|ENOBUFS|\(105\)/.test(d.toString())) this.handlers.lost();
      });
      child.on('exit', (code, signal) => {
        if (this.child === child) this.failed(`${this.command} exited (${signal ?? code})`);
      });
      stream.on('error', (e) => this.failed(`reading ${fifo}: ${e.message}`));
    });
  }

  /** One notification to the handler; one bad notification must not stop the others. */
  private readonly deliver = (m: Message): void => {
    try {
      this.handlers.message(m);
    } catch {
      // dropped
    }
  };

  private failed(why: string): void {
    if (this.stopped || this.timer) return;
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) child.kill();
    this.cleanup();
    this.handlers.lost();
    const delay = this.backoff.next();
    if (!this.saidUnavailable) {
      this.saidUnavailable = true;
      this.log.warn('cannot watch the kernel for changes; retrying, and the periodic resync still repairs drift', { reason: why, retryInMs: delay });
    } else {
      this.log.debug('kernel watch failed again', { reason: why, retryInMs: delay });
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, delay);
    this.timer.unref();
  }

  private cleanup(): void {
    this.stream?.destroy();
    this.stream = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.child?.kill();
    this.child = undefined;
    this.cleanup();
  }
}

let sharedReadBuffer: Buffer | undefined;
/** One read buffer for every watch in the process: reads are handled before the next one. */
function readBuffer(): Buffer {
  sharedReadBuffer ??= Buffer.allocUnsafe(READ_BUFFER);
  return sharedReadBuffer;
}

let parentDeathWrapper: string[] | undefined;
/** `setpriv --pdeathsig KILL --` when util-linux's setpriv is on PATH (looked up once), else nothing. */
function diesWithParent(): string[] {
  if (!parentDeathWrapper) {
    const found = (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, 'setpriv')));
    parentDeathWrapper = found ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
  }
  return parentDeathWrapper;
}
