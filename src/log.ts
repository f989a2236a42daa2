// Structured logs, through pino: one JSON object per line on stderr, e.g.
//   {"level":"info","time":"2025-01-02T03:04:05.678Z","node":"h1","network":"default","component":"lease","subnet":"10.5.3.0/24","msg":"lease acquired"}
// or, for a person at a terminal, the same event as one flat line:
//   2025-01-02T03:04:05.678Z INFO  lease acquired node=h1 network=default component=lease subnet=10.5.3.0/24
//
// The text form is a few lines here rather than pino-pretty: pino-pretty brings a dozen
// packages, runs as a transport (a worker thread, so lines can be lost at exit) unless
// wired in by hand, and its layout differs from the key=value lines weft has always printed.
// Both forms are written synchronously, so nothing is lost when the process exits.
//
// The rest of weft sees only the small Logger interface below, never pino.
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { isoTime } from './iso-time.js';
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

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'json';
  const stream: DestinationStream =
    !opts.write && format === 'json' ? pino.destination({ dest: 2, sync: true }) : lineStream(format, opts.write ?? stderrLine());
  const root = pino(
    {
      level: opts.level ?? 'info',
      base: null, // no pid or hostname: the node field names the host
      // pino.stdTimeFunctions.isoTime's text, without toISOString (iso-time.ts says why).
      timestamp: () => `,"time":"${isoTime(Date.now())}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  return wrap(opts.fields ? root.child(plain(opts.fields)) : root);
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

function wrap(p: PinoLogger): Logger {
  const at =
    (level: Level) =>
    (msg: string, fields?: Fields): void => {
      if (!p.isLevelEnabled(level)) return;
      // Always an object first: pino then never treats msg as a printf format.
      p[level](fields ? plain(fields) : {}, msg);
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (fields) => wrap(p.child(plain(fields))),
  };
}

/** Errors as their message: expected failures (etcd away, a refused route) need no stack. */
function plain(fields: Fields): Fields {
  let out: Fields | undefined;
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) (out ??= { ...fields })[k] = v.message || v.name;
  }
  return out ?? fields;
}

let stderrSink: DestinationStream | undefined;
function stderrLine(): (line: string) => void {
  stderrSink ??= pino.destination({ dest: 2, sync: true });
  const sink = stderrSink;
  return (line) => sink.write(line + '\n');
}

function lineStream(format: LogFormat, write: (line: string) => void): DestinationStream {
  return {
    write: (chunk: string) => {
      const line = chunk.endsWith('\n') ? chunk.slice(0, -1) : chunk;
      write(format === 'text' ? toText(line) : line);
    },
  };
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
