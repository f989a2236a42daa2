// The one etcd supervisor (src/testbed/etcd-cluster.ts) on loopback: a member that cannot
// start ends the wait at once with its log, rather than at the deadline, and nothing is left
// behind. (Its members inside a namespace are covered by the testbed tests, its cluster
// handling by test/store/cluster.test.ts and the e2e cluster and outage tests.)
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdCluster, freePort, startLoopbackEtcd } from '../../src/testbed/etcd-cluster.js';

describe('etcd supervisor on loopback', () => {
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });
  afterAll(() => {
    taken?.close();
  });

  it('fails at once, naming the member and quoting its log, when a member cannot bind its port', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-test-'));
    const cluster = new EtcdCluster({
      members: [{ name: 'm0', clientUrl: `http://127.0.0.1:${port}`, peerUrl: `http://127.0.0.1:${await freePort()}`, dataDir: join(dir, 'm0'), logPath: join(dir, 'm0.log') }],
      ownDir: dir,
    });
    const started = Date.now();
    const err = await cluster.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const pid = cluster.members[0]!.pid;
    await cluster.destroy();
    expect(err?.message).toMatch(/^etcd member m0 exited \(code \d+\):\n/);
    expect(err?.message).toContain('address already in use');
    // The wait's deadline is 20 s: the failure must not wait for it.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(existsSync(dir)).toBe(false);
    expect(pid !== undefined && existsSync(`/proc/${pid}`)).toBe(false);
  });

  it('starts a member, runs etcdctl against it, and removes its process and data at destroy()', async () => {
    const cluster = await startLoopbackEtcd();
    const m = cluster.members[0]!;
    try {
      expect(cluster.endpoints).toEqual([m.clientUrl]);
      expect(m.running).toBe(true);
      expect((await cluster.etcdctl(['put', '/k', 'v'])).exitCode).toBe(0);
      expect((await cluster.etcdctl(['get', '--print-value-only', '/k'])).stdout.trim()).toBe('v');
      expect(await cluster.leader()).toBe(0);
    } finally {
      await cluster.destroy();
    }
    expect(m.running).toBe(false);
    expect(existsSync(`/proc/${m.pid}`)).toBe(false);
    expect(existsSync(m.dataDir)).toBe(false);
  });
});
