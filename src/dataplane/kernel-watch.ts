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
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Backoff, RETRY } from '../backoff.js';
import type { Logger } from '../log.js';
import type { Message } from './rtnl.js';

const HDR = 16;
/** rtmon's own records between messages (a timestamp); not a kernel notification. */
const NLMSG_TSTAMP = 15;

/** Splits a byte stream into netlink messages, keeping a partial one for the next chunk. */
export class MessageStream {
  private pending = Buffer.alloc(0);

  /** Whole messages so far; throws on a length that cannot be right (the stream is then useless). */
  push(chunk: Buffer): Message[] {
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Message[] = [];
    while (buf.length >= HDR) {
      const len = buf.readUInt32LE(0);
      if (len < HDR || len > 1 << 20) throw new Error(`bad netlink message length ${len} in the notification stream`);
      const aligned = (len + 3) & ~3;
      if (buf.length < len) break;
      out.push({ type: buf.readUInt16LE(4), flags: buf.readUInt16LE(6), seq: buf.readUInt32LE(8), pid: buf.readUInt32LE(12), body: buf.subarray(HDR, len) });
      buf = buf.subarray(Math.min(aligned, buf.length));
    }
    this.pending = Buffer.from(buf);
    return out.filter((m) => m.type !== NLMSG_TSTAMP);
  }
}

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
      let stream: Socket;
      try {
        stream = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
      } catch (e) {
        return this.failed(`opening ${fifo}: ${(e as Error).message}`);
      }
      this.stream = stream;
      stream.unref();
      const [cmd, ...args] = [...diesWithParent(), this.command, 'file', fifo];
      const child = spawn(cmd!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
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
      const messages = new MessageStream();
      let first = true;
      stream.on('data', (chunk) => {
        if (first) {
          first = false;
          // rtmon listens now (its first output is the dump it makes after subscribing). Until
          // now nobody did, at the first start too (the agent starts watching after its first
          // pass): anything may have changed meanwhile.
          this.restarts++;
          this.handlers.lost();
          this.backoff.reset();
        }
        let ms: Message[];
        try {
          ms = messages.push(chunk as Buffer);
        } catch (e) {
          child.kill();
          return this.failed((e as Error).message);
        }
        for (const m of ms) {
          try {
            this.handlers.message(m);
          } catch {
            // one bad notification must not stop the others
          }
        }
      });
      stream.on('error', (e) => this.failed(`reading ${fifo}: ${e.message}`));
    });
  }

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

let parentDeathWrapper: string[] | undefined;
/** `setpriv --pdeathsig KILL --` when util-linux's setpriv is on PATH (looked up once), else nothing. */
function diesWithParent(): string[] {
  if (!parentDeathWrapper) {
    const found = (process.env.PATH ?? '').split(delimiter).some((d) => d !== '' && existsSync(join(d, 'setpriv')));
    parentDeathWrapper = found ? ['setpriv', '--pdeathsig', 'KILL', '--'] : [];
  }
  return parentDeathWrapper;
}
