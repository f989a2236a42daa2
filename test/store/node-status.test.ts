// The node status record against a real etcd: written under its own etcd lease, gone at once
// when the publisher stops, gone within the TTL when the agent dies, written again under a
// new lease when the old one is lost, and published again after etcd comes back.
import { afterEach, describe, expect, it } from 'vitest';
import { decodeNodeStatus } from '../../src/api/node-status.js';
import { StatusPublisher } from '../../src/agent/status.js';
import { createLogger } from '../../src/log.js';
import { NodeStatusWriter } from '../../src/store/node-status.js';
import { Store } from '../../src/store/store.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const fx = useEtcd('status');
const TTL = 3;
let n = 0;
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function setup(opts: { now?: () => number; callTimeoutMs?: number } = {}) {
  const prefix = `/status${process.pid}-${++n}/network`;
  const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix, ...(opts.callTimeoutMs ? { callTimeoutMs: opts.callTimeoutMs, maxAttempts: 1 } : {}) });
  const key = store.layout.nodeStatusKey('default', 'h1');
  const writer = new NodeStatusWriter(store, key, TTL);
  const lines: string[] = [];
  const publisher = new StatusPublisher({
    sink: writer,
    logger: createLogger({ format: 'text', write: (l) => lines.push(l) }),
    ...(opts.now ? { now: opts.now } : {}),
    observe: () => ({ nodeName: 'h1', network: 'default', version: '0.1.0', startedAt: Date.now(), agent: { ok: true, reason: 'ok' }, publicIP: '192.0.2.1' }),
  });
  cleanup.push(async () => {
    await publisher.stop(1000);
    writer.abandon();
    store.close();
  });
  return { key, writer, publisher, lines, read: () => fx.admin.get(key) };
}

describe('node status in etcd', () => {
  it('is written under its own etcd lease and removed at once when the publisher stops', async () => {
    const { publisher, read } = setup();
    publisher.reconciled({ desired: 0, failures: 0 });
    await publisher.check();
    const kv = await read();
    expect(kv).toBeDefined();
    expect(kv!.leaseId).not.toBe('0');
    const ttl = await fx.admin.leaseRemainingSeconds(kv!.leaseId);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL);
    const d = decodeNodeStatus(kv!.value);
    expect(d.ok && d.value).toMatchObject({ nodeName: 'h1', network: 'default', ready: true, publicIP: '192.0.2.1' });
    await publisher.stop();
    expect(await read()).toBeUndefined();
  });

  it('outlives its TTL while kept alive, and vanishes within the TTL once its agent dies', async () => {
    const { publisher, writer, read } = setup();
    await publisher.check();
    const started = Date.now();
    // Kept alive (a keepalive every TTL/3, as the publisher's ticks do) past twice the TTL.
    await waitFor(
      async () => {
        await publisher.check();
        return Date.now() - started > 2 * TTL * 1000 && (await read()) !== undefined;
      },
      { timeoutMs: 10_000, intervalMs: 200, what: 'the record to outlive its TTL' },
    );
    // A crash: keepalives stop, nothing is revoked.
    writer.abandon();
    const died = Date.now();
    await waitFor(async () => (await read()) === undefined, { timeoutMs: (TTL + 3) * 1000, what: 'the record to expire' });
    expect(Date.now() - died).toBeLessThan((TTL + 2) * 1000);
  });

  it('is written again under a new etcd lease when its lease is revoked by someone else', async () => {
    const { publisher, read, lines } = setup();
    await publisher.check();
    const first = (await read())!.leaseId;
    await fx.admin.client.leaseClient.leaseRevoke({ ID: first });
    expect(await read()).toBeUndefined();
    // The next keepalive learns the lease is gone (`lost`), and the check after it republishes.
    await waitFor(
      async () => {
        await publisher.check();
        const kv = await read();
        return kv !== undefined && kv.leaseId !== first;
      },
      { timeoutMs: 10_000, what: 'the record to come back under a new lease' },
    );
    expect(lines.filter((l) => /WARN|ERROR/.test(l))).toEqual([]);
  });

  it('survives etcd being unreachable: one warning, no throw, published again afterwards', async () => {
    let now = Date.now();
    const { publisher, read, lines } = setup({ now: () => now, callTimeoutMs: 500 });
    fx.etcd.pause();
    try {
      for (let i = 0; i < 3; i++) {
        await expect(publisher.check()).resolves.toBeUndefined();
        now += 60_000; // past any backoff
      }
    } finally {
      fx.etcd.resume();
    }
    expect(lines.filter((l) => l.includes('cannot publish the node status'))).toHaveLength(1);
    await waitFor(
      async () => {
        now += 60_000;
        await publisher.check();
        // The record alone is not proof: a put sent to the frozen etcd lands when it thaws,
        // even though the publisher saw it time out. Wait for the publisher's own success.
        return lines.some((l) => l.includes('node status published again')) && (await read()) !== undefined;
      },
      { timeoutMs: 15_000, what: 'the publisher to publish the record again once etcd is back' },
    );
    expect(lines.filter((l) => l.includes('node status published again'))).toHaveLength(1);
  });
});
