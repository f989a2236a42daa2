import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isoTime } from '../../src/iso-time.js';
import { createLogger, toText, type Fields, type LoggerOptions } from '../../src/log.js';

function capture(opts: Omit<LoggerOptions, 'write'> = {}) {
  const lines: string[] = [];
  return { lines, log: createLogger({ ...opts, write: (l) => lines.push(l) }) };
}

/**
 * The lines pino wrote for weft before log.ts wrote them itself: the options weft gave pino,
 * errors as their message, always an object before the message.
 */
function pinoLines(bound: Fields[], level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Fields | undefined): string[] {
  const lines: string[] = [];
  const plain = (f: Fields): Fields => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v instanceof Error ? v.message || v.name : v]));
  let p = pino(
    { level: 'debug', base: null, timestamp: () => `,"time":"${isoTime(Date.now())}"`, formatters: { level: (label) => ({ level: label }) } },
    { write: (chunk: string) => void lines.push(chunk.slice(0, -1)) },
  );
  for (const b of bound) p = p.child(plain(b));
  p[level](fields ? plain(fields) : {}, msg);
  return lines;
}

describe('logger', () => {
  afterEach(() => vi.restoreAllMocks());

  it('writes the bytes pino wrote for the same call', () => {
    const cases: [Fields[], Fields | undefined, string][] = [
      [[{ node: 'h1', network: 'default' }, { component: 'peers' }], { key: '/coreos.com/network/subnets/10.5.3.0-24', publicIP: '198.18.0.1', peers: 5001, operations: 3, failures: 0, trigger: 'event', ms: 0.4, kernelMs: 0.3 }, 'peer added'],
      [[], undefined, 'ready'],
      [[{ node: 'h"1\\' }], { s: 'quote " backslash \\ tab \t nl \n nul \u0000 del \u007f', u: 'caf\u00e9 \u{1f600} \u202e', long: 'x"'.repeat(80) }, 'm "q" \\ \n'],
      [[{ a: 1 }], { n: 1.5, neg: -3, big: 1e21, small: 1e-7, nan: Number.NaN, inf: -Infinity, zero: -0, t: true, f: false, nul: null, und: undefined }, 'numbers'],
      [[{ err: new Error('bound failure') }], { err: new Error('etcd is unreachable'), empty: new Error(''), arr: [1, 'a', { b: null }], obj: { x: { y: [true] } }, date: new Date(0) }, 'objects'],
      [[{ component: 'a' }], { component: 'b', fn: () => 1 }, 'a field named twice, a function left out'],
    ];
    vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2026, 11, 6, 17, 5, 9, 42));
    for (const [bound, fields, msg] of cases) {
      for (const level of ['debug', 'info', 'warn', 'error'] as const) {
        const lines: string[] = [];
        let log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
        for (const b of bound) log = log.child(b);
        log[level](msg, fields);
        expect(lines).toEqual(pinoLines(bound, level, msg, fields));
      }
    }
  });

  it('never throws for a value JSON cannot write: a cycle, a BigInt', () => {
    const { lines, log } = capture();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    log.info('odd values', { cyclic, n: 12n, nested: { n: 3n } });
    expect(JSON.parse(lines[0]!)).toMatchObject({ cyclic: { a: 1, self: '[Circular]' }, n: 12, nested: { n: '3' }, msg: 'odd values' });
  });

  it('writes one JSON object per line with level, time, msg, bound and call fields', () => {
    const { lines, log } = capture({ fields: { node: 'h1', network: 'default' } });
    log.child({ component: 'lease' }).info('lease acquired', { key: '/coreos.com/network/subnets/10.5.3.0-24', attempts: 1 });
    expect(lines).toHaveLength(1);
    const e = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(e).toEqual({
      level: 'info',
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      node: 'h1',
      network: 'default',
      component: 'lease',
      key: '/coreos.com/network/subnets/10.5.3.0-24',
      attempts: 1,
      msg: 'lease acquired',
    });
    expect(Object.keys(e).slice(0, 2)).toEqual(['level', 'time']);
  });

  it('drops lines below the level and keeps the rest', () => {
    const { lines, log } = capture({ level: 'warn' });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    expect(lines.map((l) => (JSON.parse(l) as { level: string }).level)).toEqual(['warn', 'error']);
  });

  it('logs an error as its message, leaves undefined fields out, never formats %s', () => {
    const { lines, log } = capture();
    log.warn('100%s sure', { err: new Error('etcd is unreachable'), gone: undefined });
    expect(JSON.parse(lines[0]!)).toMatchObject({ err: 'etcd is unreachable', msg: '100%s sure' });
    expect(lines[0]).not.toContain('gone');
  });

  it('keeps a hostile value on its line in JSON', () => {
    const { lines, log } = capture();
    log.warn('ignoring unusable lease', { key: 'k\n{"level":"error"}' });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.split('\n')).toHaveLength(1);
    expect(JSON.parse(lines[0]!).key).toBe('k\n{"level":"error"}');
  });

  it('renders text as "time LEVEL msg key=value", quoting only where needed', () => {
    const { lines, log } = capture({ format: 'text', level: 'debug', fields: { node: 'h1' } });
    log.info('ready', { subnet: '10.5.3.0/24', peers: 2 });
    log.debug('resync done');
    log.warn('lease renewal failed; retrying with backoff', { err: 'etcd is unreachable (tried http://192.0.2.254:2379)', extra: { a: 1 } });
    expect(lines[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z INFO  ready node=h1 subnet=10\.5\.3\.0\/24 peers=2$/);
    expect(lines[1]).toMatch(/Z DEBUG resync done node=h1$/);
    expect(lines[2]).toMatch(/Z WARN  lease renewal failed; retrying with backoff node=h1 err="etcd is unreachable \(tried http:\/\/192\.0\.2\.254:2379\)" extra="\{\\"a\\":1\}"$/);
  });

  it('escapes line breaks in a text message', () => {
    expect(toText('{"level":"warn","time":"T","msg":"a\\nb","v":"x\\ny"}')).toBe('T WARN  a\\nb v="x\\ny"');
    expect(toText('not json')).toBe('not json');
  });

  it('escapes what JSON leaves raw too: DEL, C1 controls and bidi overrides, in the message and in values', () => {
    const line = JSON.stringify({ level: 'warn', time: 'T', msg: 'key a\u202eb\u007f', key: 'x\u202ey', n: 'p\u0085q' });
    expect(toText(line)).toBe('T WARN  key a\\u202eb\\u007f key="x\\u202ey" n="p\\u0085q"');
    // A quoted value stays valid JSON: it reads back as the original text.
    expect(JSON.parse(toText(line).split('key=')[1]!.split(' n=')[0]!)).toBe('x\u202ey');
  });
});
