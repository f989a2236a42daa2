// A lease renewal that fails with an error the agent does not expect is retried like any other
// failure. It used to be thrown into the renewal timer's unobserved promise: the agent logged
// nothing and never renewed again, and the lease expired under a running agent, so every peer
// dropped the host's routes (how `make soak` lost pings, there through a misclassified etcd
// error during an etcd restart). Here the unexpected error is etcd refusing the write while
// the agent's role is revoked, which is deterministic.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { applyYaml, findLogs, networkYaml, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';
const USER = 'weft';
let tb: Testbed;
let h1: Host;

testbedFor((created) => (tb = created), {
  options: { etcdAuth: { user: USER, password: `weft-pw-${randomBytes(9).toString('hex')}` } },
  setup: async () => {
    // Renewed 10 s before expiry (half the TTL): the failed renewal has 10 s to be retried.
    await applyYaml(tb, 'network', networkYaml({ leaseTTL: '20s' }));
    h1 = await tb.addHost(1);
    tb.startAgent(h1);
    await tb.waitForSubnetEnv(h1);
  },
});

async function role(action: 'revoke-role' | 'grant-role'): Promise<void> {
  const r = await tb.etcdctl(['user', action, USER, `${USER}-rw`]);
  if (r.exitCode !== 0) throw new Error(`etcdctl user ${action} failed: ${r.stderr}`);
}

describe('lease renewal', () => {
  it('retries a renewal that failed with an unexpected error, and keeps the lease', async () => {
    const [acquired] = findLogs(tb.agentLog(h1), 'lease acquired');
    const key = String(acquired?.key);
    expect(key.startsWith(`${PREFIX}/subnets/`)).toBe(true);
    const watch = tb.watchPrefix(`${PREFIX}/subnets/`);
    try {
      await role('revoke-role');
      // The renewal is due within 10 s; etcd refuses its write (permission denied).
      const failed = await poll(() => findLogs(tb.agentLog(h1), 'lease renewal failed unexpectedly; retrying with backoff')[0], {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'the renewal to fail and say it will retry',
      });
      expect(failed).toMatchObject({ level: 'error', component: 'lease', key });
      expect(String(failed.err)).toMatch(/permission/);
      await role('grant-role');
      // Retried with backoff (at most 3 s apart): renewed long before the lease's expiry.
      const renewed = await poll(() => findLogs(tb.agentLog(h1), 'lease renewed').find((e) => typeof e.attempts === 'number'), {
        timeoutMs: 8_000,
        intervalMs: 100,
        what: 'a renewal after the failed one',
      });
      expect(renewed).toMatchObject({ key });
      expect(Date.parse(String(renewed.time))).toBeGreaterThan(Date.parse(String(failed.time)));
      // The key was never deleted, so no peer ever dropped this host's routes.
      expect(watch.events().filter((e) => e.startsWith('DELETE'))).toEqual([]);
      expect(findLogs(tb.agentLog(h1), /our lease was deleted/)).toEqual([]);
    } finally {
      watch.stop();
    }
  });
});
