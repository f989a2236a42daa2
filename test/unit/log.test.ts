import { describe, expect, it } from 'vitest';
import { createLogger, toText, type LoggerOptions } from '../../src/log.js';

function capture(opts: Omit<LoggerOptions, 'write'> = {}) {
  const lines: string[] = [];
  return { lines, log: createLogger({ ...opts, write: (l) => lines.push(l) }) };
}

describe('logger', () => {
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
