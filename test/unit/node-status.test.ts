// The node status record: codec and validation of hostile values, the pure builder, and the
// publishing policy (what a change costs in writes, and when).
import { describe, expect, it } from 'vitest';
import { decodeNodeStatus, encodeNodeStatus, MAX_REASON_LENGTH, type NodeStatus } from '../../src/api/node-status.js';
import {
  buildNodeStatus,
  classifyChange,
  DEFAULT_POLICY,
  dueAt,
  progressIntervalMs,
  StatusPublisher,
  type StatusInput,
  type StatusSink,
} from '../../src/agent/status.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { Layout } from '../../src/store/layout.js';

const T0 = Date.parse('2025-01-02T03:04:05.000Z');

function record(overrides: Partial<NodeStatus> = {}): NodeStatus {
  return {
    v: 1,
    nodeName: 'h1',
    network: 'default',
    lease: '10.5.3.0-24',
    subnet: '10.5.3.0/24',
    publicIP: '192.0.2.1',
    peers: { desired: 2, programmed: 2, skipped: 0 },
    lastSync: '2025-01-02T03:04:05.000Z',
    ready: true,
    version: '0.1.0',
    startedAt: '2025-01-02T03:00:00.000Z',
    publishedAt: '2025-01-02T03:04:06.000Z',
    ...overrides,
  };
}

function withField(field: string, value: unknown): string {
  return JSON.stringify({ ...JSON.parse(encodeNodeStatus(record())), [field]: value });
}

describe('node status codec', () => {
  it('round-trips a record with fixed key order and small size', () => {
    const text = encodeNodeStatus(record());
    expect(text).toBe(
      '{"v":1,"nodeName":"h1","network":"default","lease":"10.5.3.0-24","subnet":"10.5.3.0/24","publicIP":"192.0.2.1",' +
        '"peers":{"desired":2,"programmed":2,"skipped":0},"lastSync":"2025-01-02T03:04:05.000Z","ready":true,"version":"0.1.0",' +
        '"startedAt":"2025-01-02T03:00:00.000Z","publishedAt":"2025-01-02T03:04:06.000Z"}',
    );
    expect(decodeNodeStatus(text)).toEqual({ ok: true, value: record() });
    const full = record({ subnetIPv6: 'fd00:5:0:3::/64', publicIPv6: 'fd00::1', reserved: true, ready: false, reason: 'converging the dataplane' });
    expect(decodeNodeStatus(encodeNodeStatus(full))).toEqual({ ok: true, value: full });
  });

  it('accepts a record without a lease yet, and ignores fields it does not know', () => {
    const { lease: _l, subnet: _s, lastSync: _t, ...early } = record({ ready: false, reason: 'acquiring a lease' });
    expect(decodeNodeStatus(encodeNodeStatus(early as NodeStatus))).toEqual({ ok: true, value: early });
    const d = decodeNodeStatus(withField('futureField', { x: 1 }));
    expect(d.ok && d.value).toEqual(record());
  });

  it.each([
    ['not JSON', 'nope', /not valid JSON/],
    ['an array', '[]', /not a JSON object/],
    ['null', 'null', /not a JSON object/],
    ['too large', withField('pad', 'x'.repeat(5000)), /over 4096/],
    ['no version', JSON.stringify({ ...record(), v: undefined }), /^v \(missing\)/],
    ['a newer version', withField('v', 2), /^v 2 is not a status version/],
    ['a node name with a slash', withField('nodeName', 'h1/../x'), /nodeName .* is not a node name/],
    ['a network with capitals', withField('network', 'Blue'), /network "Blue"/],
    ['a lease that is not a key', withField('lease', '10.5.3.0/24'), /lease .* is not a lease name/],
    ['a subnet with host bits', withField('subnet', '10.5.3.1/24'), /subnet .* is not an IPv4 subnet/],
    ['an IPv6 subnet that is not one', withField('subnetIPv6', '10.5.3.0/24'), /subnetIPv6/],
    ['a public IP with a command', withField('publicIP', '192.0.2.1\nroute add'), /publicIP/],
    ['a reason with a terminal escape', withField('reason', 'ok\u001b[2J'), /reason/],
    ['a reason with a newline', withField('reason', 'a\nb'), /reason/],
    ['an over-long reason', withField('reason', 'x'.repeat(MAX_REASON_LENGTH + 1)), /reason/],
    ['ready as a string', withField('ready', 'yes'), /ready "yes"/],
    ['a version with spaces', withField('version', '1.0 beta'), /version/],
    ['a local time', withField('startedAt', '2025-01-02 03:00:00'), /startedAt/],
    ['an impossible date', withField('lastSync', '2025-13-45T99:99:99Z'), /lastSync/],
    ['peers missing', withField('peers', undefined), /peers \(missing\) is not an object/],
    ['a negative count', withField('peers', { desired: -1, programmed: 0, skipped: 0 }), /peers.desired -1/],
    ['a fractional count', withField('peers', { desired: 1.5, programmed: 0, skipped: 0 }), /peers.desired 1.5/],
    ['a string count', withField('peers', { desired: 2, programmed: '2', skipped: 0 }), /peers.programmed "2"/],
    ['more programmed than desired', withField('peers', { desired: 1, programmed: 2, skipped: 0 }), /more than/],
  ])('refuses %s, saying why', (_name, text, why) => {
    const d = decodeNodeStatus(text);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.error).toMatch(why);
  });

  it('names every bad field at once', () => {
    const d = decodeNodeStatus(JSON.stringify({ ...record(), publicIP: 'x', version: '' }));
    expect(d.ok ? '' : d.error).toMatch(/publicIP "x".*; version ""/);
  });
});

describe('status keys', () => {
  it('lives under _weft/nodes/<network>/<node>, never under subnets', () => {
    const l = new Layout('/coreos.com/network');
    expect(l.nodeStatusKey('default', 'h1')).toBe('/coreos.com/network/_weft/nodes/default/h1');
    expect(l.nodeStatusKey('blue', 'h1').startsWith(l.subnetsPrefix('default').slice(0, -1))).toBe(false);
    expect(l.nodeOfStatusKey('/coreos.com/network/_weft/nodes/blue/h1')).toEqual({ network: 'blue', node: 'h1' });
    expect(l.nodeOfStatusKey('/coreos.com/network/_weft/nodes/h1')).toEqual({ network: undefined, node: 'h1' });
    expect(l.nodeOfStatusKey('/coreos.com/network/_weft/nodes/a/b/c').network).toBeUndefined();
  });
});

describe('buildNodeStatus', () => {
  const base: StatusInput = {
    nodeName: 'h1',
    network: 'default',
    version: '0.1.0',
    startedAt: T0 - 60_000,
    agent: { ok: true, reason: 'ok 10.5.3.0/24' },
    lease: { name: '10.5.3.0-24', subnet: '10.5.3.0/24', reserved: false },
    publicIP: '192.0.2.1',
    sync: { desired: 3, skipped: 0, failures: 0, at: T0 },
    lastSuccessAt: T0,
  };

  it('is ready when the agent is and the last reconcile went through', () => {
    const s = buildNodeStatus(base, T0 + 1000);
    expect(s).toMatchObject({ ready: true, peers: { desired: 3, programmed: 3, skipped: 0 }, lastSync: '2025-01-02T03:04:05.000Z', lease: '10.5.3.0-24' });
    expect(s.reason).toBeUndefined();
    expect(decodeNodeStatus(encodeNodeStatus(s)).ok).toBe(true);
  });

  it('counts peers left out on purpose as not programmed, and stays ready', () => {
    const s = buildNodeStatus({ ...base, sync: { desired: 3, skipped: 1, failures: 0, at: T0 } }, T0);
    expect(s).toMatchObject({ ready: true, peers: { desired: 3, programmed: 2, skipped: 1 } });
  });

  it('says why it is not ready', () => {
    expect(buildNodeStatus({ ...base, agent: { ok: false, reason: 'out of subnets' } }, T0)).toMatchObject({ ready: false, reason: 'out of subnets' });
    const { sync: _s, lastSuccessAt: _l, ...noSync } = base;
    expect(buildNodeStatus(noSync, T0)).toMatchObject({ ready: false, reason: 'converging the dataplane', peers: { desired: 0, programmed: 0 } });
    const refused = buildNodeStatus({ ...base, sync: { desired: 3, skipped: 0, failures: 2, at: T0 } }, T0);
    expect(refused).toMatchObject({ ready: false, peers: { programmed: 1 }, reason: 'the kernel refused 2 operations at the last reconcile (retrying)' });
    const threw = buildNodeStatus({ ...base, sync: { desired: 3, skipped: 0, failures: 0, error: 'ip: boom\nline two', at: T0 } }, T0);
    expect(threw).toMatchObject({ ready: false, peers: { programmed: 0 }, reason: 'dataplane reconcile failed (retrying): ip: boom line two' });
  });

  it('keeps a long or multi-line reason one printable, bounded line that decodes', () => {
    const s = buildNodeStatus({ ...base, agent: { ok: false, reason: `bad\u001b[31m ${'x'.repeat(1000)}` } }, T0);
    expect(s.reason!.length).toBe(MAX_REASON_LENGTH);
    expect(decodeNodeStatus(encodeNodeStatus(s)).ok).toBe(true);
  });
});

describe('publishing policy', () => {
  const a = record();

  it('tells state changes from progress and from the sync time alone', () => {
    expect(classifyChange(undefined, a)).toBe('state');
    expect(classifyChange(a, { ...a, publishedAt: 'later' })).toBe('none');
    expect(classifyChange(a, { ...a, ready: false, reason: 'x' })).toBe('state');
    expect(classifyChange(a, { ...a, lease: '10.5.4.0-24' })).toBe('state');
    expect(classifyChange(a, { ...a, peers: { desired: 3, programmed: 2, skipped: 0 } })).toBe('progress');
    expect(classifyChange(a, { ...a, lastSync: '2025-01-02T03:05:05.000Z' })).toBe('sync');
  });

  it('spaces progress writes by fleet size: about 100 writes a second for the whole fleet', () => {
    expect(progressIntervalMs(0)).toBe(2000);
    expect(progressIntervalMs(1000)).toBe(10_000);
    expect(progressIntervalMs(5000)).toBe(50_000);
    expect(progressIntervalMs(100_000)).toBe(60_000);
    for (const n of [300, 1000, 5000]) expect(n / (progressIntervalMs(n) / 1000)).toBeCloseTo(100, 5);
  });

  it('schedules each kind of change', () => {
    expect(dueAt('none', T0, T0, 0.5, 10)).toBeUndefined();
    expect(dueAt('state', T0, T0 + 100_000, 0.5, 5000)).toBe(T0 + DEFAULT_POLICY.minIntervalMs);
    // Long after the last write, a progress change waits its jitter share of the interval.
    expect(dueAt('progress', T0, T0 + 100_000, 0.5, 5000)).toBe(T0 + 100_000 + 25_000);
    expect(dueAt('progress', T0, T0 + 1, 0, 5000)).toBe(T0 + 50_000);
    expect(dueAt('sync', T0, T0 + 1, 0.5, 10)).toBe(T0 + DEFAULT_POLICY.heartbeatMs);
  });
});

/** An in-memory sink: the publisher's rate limiting and failure handling without etcd. */
class MemorySink implements StatusSink {
  readonly key = '/p/_weft/nodes/default/h1';
  readonly ttlSeconds = 30;
  writes: NodeStatus[] = [];
  keepalives = 0;
  failNext = 0;
  revoked = false;
  private lost: (() => void) | undefined;
  async put(value: string): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('etcd is unreachable');
    }
    const d = decodeNodeStatus(value);
    if (!d.ok) throw new Error(d.error);
    this.writes.push(d.value);
  }
  async keepAlive(): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('etcd is unreachable');
    }
    this.keepalives++;
  }
  async revoke(): Promise<void> {
    this.revoked = true;
  }
  abandon(): void {}
  onLost(handler: () => void): void {
    this.lost = handler;
  }
  loseLease(): void {
    this.lost?.();
  }
}

describe('StatusPublisher', () => {
  function setup() {
    let now = T0;
    const sink = new MemorySink();
    const lines: string[] = [];
    const view = { ready: { ok: false, reason: 'acquiring a lease' } as { ok: boolean; reason: string } };
    const pub = new StatusPublisher({
      sink,
      logger: createLogger({ format: 'text', write: (l) => lines.push(l) }),
      now: () => now,
      random: () => 0,
      observe: () => ({ nodeName: 'h1', network: 'default', version: '0.1.0', startedAt: T0, agent: view.ready }),
    });
    return { sink, lines, view, pub, advance: (ms: number) => (now += ms) };
  }

  it('publishes at once, then coalesces changes into at most one write per interval', async () => {
    const { sink, view, pub, advance } = setup();
    await pub.check();
    expect(sink.writes.map((w) => w.reason)).toEqual(['acquiring a lease']);
    view.ready = { ok: true, reason: 'ok' };
    for (let i = 1; i <= 5; i++) pub.reconciled({ desired: i, failures: 0 });
    await pub.check();
    expect(sink.writes).toHaveLength(1); // within 2 s of the last write
    advance(2000);
    await pub.check();
    expect(sink.writes).toHaveLength(2);
    expect(sink.writes[1]).toMatchObject({ ready: true, peers: { desired: 5, programmed: 5 } });
    await pub.check();
    expect(sink.writes).toHaveLength(2); // nothing changed
    // A later reconcile that only moves the sync time waits for the heartbeat.
    advance(5000);
    pub.reconciled({ desired: 5, failures: 0 });
    await pub.check();
    expect(sink.writes).toHaveLength(2);
    advance(DEFAULT_POLICY.heartbeatMs);
    await pub.check();
    expect(sink.writes).toHaveLength(3);
  });

  it('logs a failure once per outage, backs off, and says when it publishes again', async () => {
    const { sink, lines, pub, advance } = setup();
    sink.failNext = 3;
    for (let i = 0; i < 6; i++) {
      await pub.check();
      advance(40_000);
    }
    expect(sink.writes).toHaveLength(1);
    expect(lines.filter((l) => l.includes('cannot publish the node status'))).toHaveLength(1);
    expect(lines.filter((l) => l.includes('node status published again'))).toHaveLength(1);
  });

  it('republishes at once when the record\'s etcd lease is lost, and revokes it on stop', async () => {
    const { sink, pub, advance } = setup();
    await pub.check();
    advance(10);
    await pub.check();
    expect(sink.writes).toHaveLength(1);
    sink.loseLease();
    await pub.check();
    expect(sink.writes).toHaveLength(2);
    await pub.stop();
    expect(sink.revoked).toBe(true);
    advance(100_000);
    await pub.check();
    expect(sink.writes).toHaveLength(2);
  });

  it('refreshes the record\'s etcd lease every TTL/3 without rewriting it, and stays quiet while etcd is known to be away', async () => {
    const { sink, lines, pub, advance } = setup();
    await pub.check();
    advance(9_000);
    await pub.check();
    expect(sink.keepalives).toBe(0);
    advance(1_000);
    await pub.check();
    expect([sink.writes.length, sink.keepalives]).toEqual([1, 1]);
    // The lease watch reports an outage: no attempt at all, so nothing to log.
    pub.etcdReachable(false);
    sink.failNext = 100;
    for (let i = 0; i < 10; i++) {
      advance(10_000);
      pub.reconciled({ desired: i, failures: 0 });
      await pub.check();
    }
    expect(sink.failNext).toBe(100);
    expect(lines.filter((l) => / WARN /.test(l))).toEqual([]);
    sink.failNext = 0;
    pub.etcdReachable(true);
    await pub.check();
    expect(sink.writes.at(-1)!.peers.desired).toBe(9);
  });

  it('never throws out of a check, whatever the sink does', async () => {
    const pub = new StatusPublisher({
      sink: { key: 'k', ttlSeconds: 30, put: () => Promise.reject(new Error('x')), keepAlive: () => Promise.reject(new Error('z')), revoke: () => Promise.reject(new Error('y')), abandon: () => {}, onLost: () => {} },
      logger: silentLogger,
      observe: () => ({ nodeName: 'h1', network: 'default', version: '0.1.0', startedAt: T0, agent: { ok: true, reason: 'ok' } }),
    });
    await expect(pub.check()).resolves.toBeUndefined();
    await expect(pub.stop()).resolves.toBeUndefined();
  });
});
