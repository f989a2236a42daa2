// Structured logs: one JSON object per line on stderr, e.g.
//   {"level":"info","time":"2025-01-02T03:04:05.678Z","node":"h1","network":"default","component":"lease","subnet":"10.5.3.0/24","msg":"lease acquired"}
// or, for a person at a terminal, the same event as one flat line:
//   2025-01-02T03:04:05.678Z INFO  lease acquired node=h1 network=default component=lease subnet=10.5.3.0/24
//
// Written here rather than through pino, which wrote the same lines before (level, time, the
// bound fields, the call's fields, msg). The agent logs a line per lease event, and that line
// runs cold each time: pino's path (its log method, its serializer loop, sonic-boom's
// buffering around the one synchronous write) was the largest piece of JavaScript on the
// event path (docs/performance.md, "CPU per lease event, third pass"). Here a line is a few
// string concatenations and one write(2).
//
// The text form is a few lines here rather than pino-pretty: its layout differs from the
// key=value lines weft has always printed. Both forms are written synchronously, so nothing
// is lost when the process exits.
//
// The rest of weft sees only the small Logger interface below.
import { writeSync } from 'node:fs';
import { isoTimeCached } from './iso-time.js';
import { escapeUnprintable, isPrintable, printable, unicodeEscape } from './printable.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error'];
export type LogFormat = 'json' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** A logger whose lines all carry these fields (component, subject). */
  child(fields: Fields): Logger;
}

export interface LoggerOptions {
  /** Lowest level written (default info). */
  level?: Level;
  /** Default json. */
  format?: LogFormat;
  /** Receives each line without its newline; default: stderr, synchronously. */
  write?: (line: string) => void;
  /** Fields on every line. */
  fields?: Fields;
}

const RANK: Record<Level, number> = { debug: 20, info: 30, warn: 40, error: 50 };

export function createLogger(opts: LoggerOptions = {}): Logger {
  const write = opts.write ?? stderrLine;
  const sink = opts.format === 'text' ? (line: string) => write(toText(line)) : write;
  return new JsonLogger(sink, RANK[opts.level ?? 'info'], opts.fields ? members(opts.fields) : '');
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

class JsonLogger implements Logger {
  constructor(
    private readonly sink: (line: string) => void,
    private readonly min: number,
    /** The bound fields, written: `,"node":"h1","component":"lease"`. */
    private readonly bound: string,
  ) {}

  debug(msg: string, fields?: Fields): void {
    if (this.min <= 20) this.line('{"level":"debug","time":"', msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    if (this.min <= 30) this.line('{"level":"info","time":"', msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    if (this.min <= 40) this.line('{"level":"warn","time":"', msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    if (this.min <= 50) this.line('{"level":"error","time":"', msg, fields);
  }
  child(fields: Fields): Logger {
    return new JsonLogger(this.sink, this.min, this.bound + members(fields));
  }

  private line(head: string, msg: string, fields: Fields | undefined): void {
    this.sink(`${head}${isoTimeCached(Date.now())}"${this.bound}${fields ? members(fields) : ''},"msg":${JSON.stringify(String(msg))}}`);
  }
}

/**
 * Fields as JSON members, each `,"key":value`, in their order. An Error is its message
 * (expected failures, etcd away or a refused route, need no stack); undefined, functions and
 * symbols are left out; a number JSON cannot hold is null; what JSON.stringify refuses (a
 * cycle, a BigInt) is written by a safe copy rather than thrown out of a log call.
 */
function members(fields: Fields): string {
  let out = '';
  for (const key in fields) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) continue;
    const v = fields[key];
    let text: string | undefined;
    switch (typeof v) {
      case 'string':
        text = JSON.stringify(v);
        break;
      case 'number':
        text = Number.isFinite(v) ? String(v) : 'null';
        break;
      case 'boolean':
        text = v ? 'true' : 'false';
        break;
      case 'bigint':
        text = String(v);
        break;
      case 'undefined':
      case 'function':
      case 'symbol':
        continue;
      default:
        text = v instanceof Error ? JSON.stringify(v.message || v.name) : jsonOf(v);
    }
    if (text !== undefined) out += `,${JSON.stringify(key)}:${text}`;
  }
  return out;
}

function jsonOf(v: unknown): string | undefined {
  try {
    return JSON.stringify(v);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(v, (_k, x: unknown) => {
      if (typeof x === 'bigint') return String(x);
      if (typeof x === 'object' && x !== null) {
        if (seen.has(x)) return '[Circular]';
        seen.add(x);
      }
      return x;
    });
  }
}

const stderrLine = (line: string): void => writeAll(2, `${line}\n`);
const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * The whole line in synchronous writes: a partial write (a pipe) goes on with the rest, and
 * EAGAIN (a non-blocking stderr shared with another process) waits a moment and retries. Any
 * other failure (stderr closed) drops the line: a log line must never stop the agent.
 */
function writeAll(fd: number, text: string): void {
  let buf: Buffer | undefined;
  let done = 0;
  for (;;) {
    try {
      if (!buf) {
        const n = writeSync(fd, text);
        if (n >= Buffer.byteLength(text)) return;
        buf = Buffer.from(text);
        done = n;
      } else {
        done += writeSync(fd, buf, done);
        if (done >= buf.length) return;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

/** One JSON log line as "time LEVEL msg key=value ..." (fields in the order logged). */
export function toText(jsonLine: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const { time, level, msg, ...fields } = entry;
  const kv = Object.entries(fields)
    .map(([k, v]) => `${k}=${textValue(v)}`)
    .join(' ');
  const head = `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${oneLine(String(msg ?? ''))}`;
  return kv ? `${head} ${kv}` : head;
}

/**
 * Bare when unambiguous, else JSON-quoted (so a value never spills into the next field or
 * line), with what JSON leaves raw (DEL, C1 controls, bidi marks) escaped as well.
 */
function textValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[^\s"=]+$/.test(s) && isPrintable(s) ? s : printable(JSON.stringify(s));
}

/** Unprintable characters escaped (C0 the JSON way, \n): a message quoting a hostile etcd value stays one line. */
function oneLine(s: string): string {
  return escapeUnprintable(s, (c) => (c < ' ' ? JSON.stringify(c).slice(1, -1) : unicodeEscape(c)));
}
