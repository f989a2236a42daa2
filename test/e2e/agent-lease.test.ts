// The agent's lease lifecycle with real processes: real etcd in an underlay namespace, each
// agent in its own host namespace with its own kernel.
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Testbed } from '../../src/testbed/topology.js';
import { agentRuns, applyYaml, currentRunLog, etcdKey, findLogs, linkMac, networkYaml, subnetKeys, testbedFor, waitForRun } from './helpers.js';

const PREFIX = '/coreos.com/network';
let tb: Testbed;

testbedFor((created) => (tb = created), {
  setup: async () => {
    // A short TTL so renewals happen within the test: renewed at TTL/2 = 3 s.
    await applyYaml(tb, 'network', networkYaml({ leaseTTL: '6s' }));
  },
});

async function leaseKeyOf(node: string): Promise<string> {
  for (const key of await subnetKeys(tb)) {
    const kv = await etcdKey(tb, `${PREFIX}/subnets/${key}`);
    if (kv && JSON.parse(kv.value).NodeName === node) return key;
  }
  throw new Error(`no lease for ${node}`);
}

describe('weft agent: lease lifecycle', () => {
  it('acquires a lease, publishes its real VTEP MAC, writes flannel subnet.env and turns ready', async () => {
    const h1 = await tb.addHost(1);
    tb.startAgent(h1, ['--healthz-ip', '127.0.0.1', '--healthz-port', '9102']);
    const env = await tb.waitForSubnetEnv(h1);
    expect(env.network.toString()).toBe('10.5.0.0/16');
    expect(env.subnet.prefix).toBe(24);
    expect(env.text).toBe(`FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=${env.bridgeIp}/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n`);
    expect(statSync(h1.subnetFile).mode & 0o777).toBe(0o644);
    await poll(async () => (await tb.httpGet(h1, 'http://127.0.0.1:9102/readyz')).status === 200, { timeoutMs: 10_000, what: 'readyz' });
    expect((await tb.httpGet(h1, 'http://127.0.0.1:9102/healthz')).status).toBe(200);
    const metrics = (await tb.httpGet(h1, 'http://127.0.0.1:9102/metrics')).body;
    expect(metrics).toMatch(/^weft_agent_ready 1$/m);
    expect(metrics).toMatch(/^weft_etcd_reachable 1$/m);
    expect(metrics).toMatch(/^weft_lease_acquisitions_total\{how="new"\} 1$/m);
    expect(metrics).toMatch(/^weft_reconciles_total\{trigger="event"\} [1-9]/m);
    expect(metrics).toMatch(/^weft_leases 1$/m);

    const key = env.subnet.toKey();
    const kv = await etcdKey(tb, `${PREFIX}/subnets/${key}`);
    const mac = await linkMac(h1, 'flannel.1');
    expect(kv?.value).toBe(`{"PublicIP":"${h1.ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"},"NodeName":"h1"}`);
    expect(kv?.lease).not.toBe(0);
  });

  it('renews a lease with a 6 s TTL without a gap', async () => {
    const key = await leaseKeyOf('h1');
    const watch = tb.watchPrefix(`${PREFIX}/subnets/${key}`);
    try {
      // Each renewal is a put under a fresh etcd lease; three of them span more than two TTLs.
      await poll(() => watch.events().filter((e) => e.startsWith('PUT')).length >= 3, { timeoutMs: 20_000, what: 'three renewals' });
      expect(watch.events().filter((e) => e.startsWith('DELETE'))).toEqual([]);
      // Each renewal is one info line naming the key; no failure was logged.
      const h1 = tb.host(1);
      const renewed = findLogs(tb.agentLog(h1), 'lease renewed');
      expect(renewed.length).toBeGreaterThanOrEqual(2);
      for (const line of renewed) expect(line).toMatchObject({ level: 'info', component: 'lease', key: `${PREFIX}/subnets/${key}`, node: 'h1' });
      expect(findLogs(tb.agentLog(h1), /renewal failed/)).toEqual([]);
      const metrics = (await tb.httpGet(h1, 'http://127.0.0.1:9102/metrics')).body;
      expect(Number(/^weft_lease_renewals_total\{result="ok"\} (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(renewed.length);
      const left = Number(/^weft_lease_expiry_seconds (\S+)$/m.exec(metrics)?.[1]);
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(6);
    } finally {
      watch.stop();
    }
  });

  it('re-acquires the same subnet when an operator deletes its lease, and keeps running', async () => {
    const h1 = tb.host(1);
    const key = await leaseKeyOf('h1');
    expect((await tb.weft(['delete', 'lease', key])).exitCode).toBe(0);
    await poll(async () => (await etcdKey(tb, `${PREFIX}/subnets/${key}`)) !== undefined, { timeoutMs: 10_000, what: 'the lease to come back' });
    // Noticed by the watch, or (1 run in a few hundred, renewing every 3 s) by a renewal that
    // ran between the delete and its watch event: either way one loss, logged once.
    expect(findLogs(tb.agentLog(h1), /re-acquiring/)).toMatchObject([
      { msg: expect.stringMatching(/^(our lease was deleted|lease was changed or removed by someone else); re-acquiring$/), level: 'warn', key: `${PREFIX}/subnets/${key}` },
    ]);
    expect((await tb.httpGet(h1, 'http://127.0.0.1:9102/metrics')).body).toMatch(/^weft_lease_losses_total 1$/m);
    expect(h1.agent?.status).toBeUndefined();
    expect(tb.readSubnetEnv(h1)?.subnet.toKey()).toBe(key);
  });

  it('leaves its lease on SIGTERM and gets the same subnet and device MAC back on restart', async () => {
    const h1 = tb.host(1);
    const key = await leaseKeyOf('h1');
    const mac = await linkMac(h1, 'flannel.1');
    const status = await tb.stopAgent(h1, 'SIGTERM');
    expect(status).toEqual({ code: 0, signal: null });
    expect(await etcdKey(tb, `${PREFIX}/subnets/${key}`)).toBeDefined();
    const runs = agentRuns(tb, h1).length;
    tb.startAgent(h1);
    const log = await waitForRun(tb, h1, runs, 'lease acquired');
    expect(findLogs(log, 'lease acquired')).toMatchObject([{ how: 'reused lease (matched by node-name)', key: `${PREFIX}/subnets/${key}` }]);
    expect(tb.readSubnetEnv(h1)?.subnet.toKey()).toBe(key);
    expect(await linkMac(h1, 'flannel.1')).toBe(mac);
  });

  it('stops renewing when an operator turns its live lease into a reservation', async () => {
    const h1 = tb.host(1);
    const env = tb.readSubnetEnv(h1)!;
    const key = `${PREFIX}/subnets/${env.subnet.toKey()}`;
    await applyYaml(
      tb,
      'pin-h1',
      `apiVersion: weft.io/v1alpha1
kind: Subnet
metadata:
  name: h1-pinned
spec:
  network: default
  cidr: ${env.subnet}
  node: h1
`,
    );
    expect((await etcdKey(tb, key))?.lease).toBe(0);
    await poll(() => /our lease is now a reservation/.test(currentRunLog(tb, h1)), { timeoutMs: 5000, what: 'the agent to notice' });
    // Over more than a whole TTL (renewals were due every 3 s), the key must stay lease-less.
    const until = Date.now() + 7000;
    while (Date.now() < until) {
      expect((await etcdKey(tb, key))?.lease).toBe(0);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(tb.readSubnetEnv(h1)?.subnet.toString()).toBe(env.subnet.toString());
  });

  it('waits, not ready, on a full network and takes the first subnet that frees up', async () => {
    // A /22 holds three assignable /24s (the first one is never handed out).
    await applyYaml(
      tb,
      'small',
      `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: small
spec:
  cidr: 10.9.0.0/22
  subnetLength: 24
  backend:
    type: vxlan
    vni: 9
`,
    );
    const hosts = [];
    for (const i of [3, 4, 5]) {
      const h = await tb.addHost(i);
      tb.startAgent(h, ['--network', 'small']);
      hosts.push(h);
    }
    for (const h of hosts) await tb.waitForSubnetEnv(h);
    const h6 = await tb.addHost(6);
    tb.startAgent(h6, ['--network', 'small', '--healthz-ip', '127.0.0.1', '--healthz-port', '9106']);
    await poll(() => /out of subnets/.test(tb.agentLog(h6)), { timeoutMs: 10_000, what: 'h6 to report the full network' });
    const ready = await tb.httpGet(h6, 'http://127.0.0.1:9106/readyz');
    expect([ready.status, ready.body.trim()]).toEqual([503, 'out of subnets']);
    expect(h6.agent?.status).toBeUndefined();
    // h3 leaves for good: its agent stops and an operator evicts its lease.
    await tb.stopAgent(hosts[0]!, 'SIGKILL');
    const freed = tb.readSubnetEnv(hosts[0]!)!.subnet;
    expect((await tb.weft(['delete', 'lease', freed.toKey(), '--network', 'small'])).exitCode).toBe(0);
    const env = await tb.waitForSubnetEnv(h6, 20_000);
    expect(env.subnet.toString()).toBe(freed.toString());
    await poll(async () => (await tb.httpGet(h6, 'http://127.0.0.1:9106/readyz')).status === 200, { timeoutMs: 10_000, what: 'h6 ready' });
    expect(tb.agentLog(h6).match(/out of subnets/g)).toHaveLength(1); // logged once, not per retry
    for (const h of [...hosts.slice(1), h6]) await tb.stopAgent(h, 'SIGKILL');
  });

  it('follows a changed lease TTL and subnet range live, and asks for a restart for the rest', async () => {
    const tune = (extra: string) => `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: tune
spec:
  cidr: 10.11.0.0/16
  subnetLength: 24
${extra}`;
    await applyYaml(tb, 'tune', tune('  backend:\n    type: vxlan\n    vni: 11\n  leaseTTL: 1h\n'));
    const h7 = await tb.addHost(7);
    tb.startAgent(h7, ['--network', 'tune', '--resync-interval', '1s']);
    const before = (await tb.waitForSubnetEnv(h7)).subnet;
    const key = `${PREFIX}/tune/subnets/${before.toKey()}`;
    const ttlOf = async (k: string) => {
      const fields = (await tb.etcdctl(['get', k, '-w', 'fields'])).stdout;
      const id = BigInt(/"Lease" : (\d+)/.exec(fields)![1]!);
      const out = (await tb.etcdctl(['lease', 'timetolive', id.toString(16)])).stdout;
      return Number(/granted with TTL\((\d+)s\)/.exec(out)![1]);
    };
    expect(await ttlOf(key)).toBe(3600);

    // A shorter TTL applies live; a new VNI waits for a restart, said once.
    await applyYaml(tb, 'tune', tune('  backend:\n    type: vxlan\n    vni: 12\n  leaseTTL: 30s\n'));
    await poll(async () => (await ttlOf(key)) === 30, { timeoutMs: 10_000, what: 'the lease to carry the new TTL' });
    expect(findLogs(currentRunLog(tb, h7), 'network config updated', { fields: 'leaseTTL' })).toHaveLength(1);
    await poll(() => /restart the agent to apply it/.test(currentRunLog(tb, h7)), { timeoutMs: 5000, what: 'the restart notice' });
    expect(currentRunLog(tb, h7)).toMatch(/network config changed \(backend\.vni\)/);

    // A range that leaves our subnet out (forced past the CLI's guard): the agent moves.
    const octet = (before.network.value >> 8) & 255;
    const range = octet < 250 ? `  subnetMin: 10.11.${octet + 1}.0\n` : `  subnetMax: 10.11.${octet - 1}.0\n`;
    const file = join(tb.workDir, 'tune-range.yaml');
    writeFileSync(file, tune(`${range}  backend:\n    type: vxlan\n    vni: 12\n  leaseTTL: 30s\n`));
    const forced = await tb.weft(['apply', '-f', file, '--force']);
    expect(forced.exitCode, forced.stderr).toBe(0);
    const moved = await poll(() => {
      const env = tb.readSubnetEnv(h7);
      return env && !env.subnet.equals(before) ? env.subnet : undefined;
    }, { timeoutMs: 15_000, what: 'h7 to move into the new range' });
    const movedOctet = (moved.network.value >> 8) & 255;
    expect(octet < 250 ? movedOctet > octet : movedOctet < octet).toBe(true);
    expect(currentRunLog(tb, h7)).toMatch(/our subnet is outside the network range now/);
    expect(currentRunLog(tb, h7).match(/restart the agent to apply it/g)).toHaveLength(1);
    await tb.stopAgent(h7, 'SIGKILL');
  });

  it('listens on no TCP port unless --healthz-port is given', async () => {
    const h1 = tb.host(1);
    const r = await execIn(h1.ns, 'cat', ['/proc/net/tcp']);
    const listening = r.stdout.split('\n').slice(1).filter((l) => l.trim().split(/\s+/)[3] === '0A');
    expect(listening).toEqual([]);
  });

  it('adopts a reservation for its node and keeps it lease-less across restarts and renewals', async () => {
    await applyYaml(
      tb,
      'reservation',
      `apiVersion: weft.io/v1alpha1
kind: Subnet
metadata:
  name: h2-reserved
spec:
  network: default
  cidr: 10.5.200.0/24
  node: h2
`,
    );
    const h2 = await tb.addHost(2);
    tb.startAgent(h2);
    const env = await tb.waitForSubnetEnv(h2);
    expect(env.subnet.toString()).toBe('10.5.200.0/24');
    const key = `${PREFIX}/subnets/10.5.200.0-24`;
    await poll(async () => JSON.parse((await etcdKey(tb, key))!.value).BackendType === 'vxlan', { timeoutMs: 5000, what: 'adoption' });
    expect((await etcdKey(tb, key))?.lease).toBe(0);
    await tb.stopAgent(h2, 'SIGKILL');
    tb.startAgent(h2);
    expect(findLogs(await waitForRun(tb, h2, 1, 'lease acquired'), 'lease acquired')).toMatchObject([{ component: 'lease', key, how: 'adopted reservation', reservation: true }]);
    expect((await etcdKey(tb, key))?.lease).toBe(0);
    expect(tb.readSubnetEnv(h2)?.subnet.toString()).toBe('10.5.200.0/24');
  });
  it('backs off and re-checks, rather than exiting or trading at once, when a second host runs with its node name', async () => {
    const h2 = tb.host(2); // runs with node name h2 and holds the 10.5.200.0/24 reservation
    const key = `${PREFIX}/subnets/10.5.200.0-24`;
    const clone = await tb.addHost(9);
    tb.startAgent(clone, ['--node-name', 'h2']);
    const tookOver = /another agent with our node name took over our lease/;
    await poll(() => findLogs(tb.agentLog(h2), tookOver).length > 0, { timeoutMs: 10_000, what: 'h2 to notice the clone' });
    expect(findLogs(tb.agentLog(h2), tookOver)[0]).toMatchObject({ level: 'warn', key, takerPublicIP: clone.ip });
    // After its back-off (about 3 s) h2 takes the subnet back; the clone then backs off in
    // turn (longer each time). Neither exits (an exit was a restart loop for a forged key).
    await poll(async () => JSON.parse((await etcdKey(tb, key))!.value).PublicIP === h2.ip, { timeoutMs: 15_000, what: 'h2 to take it back' });
    await poll(() => findLogs(tb.agentLog(clone), tookOver).length > 0, { timeoutMs: 10_000, what: 'the clone to back off' });
    expect(h2.agent?.status).toBeUndefined();
    expect(clone.agent?.status).toBeUndefined();
    await tb.stopAgent(clone, 'SIGKILL');
  });
});
