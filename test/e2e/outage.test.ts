// etcd misbehaving under a running overlay: stopped for 30 s, frozen (SIGSTOP), cut off by the
// network, and compacted past an agent's revision. Traffic between hosts must not notice.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Testbed, Host, PingHandle } from '../../src/testbed/topology.js';
import { agentRuns, applyYaml, currentRunLog, expectFullMesh, joinHost, kernelState, logEntries, networkYaml, testbedFor, waitForRun } from './helpers.js';

const PREFIX = '/coreos.com/network';
let tb: Testbed;
let hosts: Host[];

testbedFor((created) => (tb = created), {
  setup: async () => {
    await applyYaml(tb, 'network', networkYaml());
    for (const i of [1, 2, 3]) await joinHost(tb, i, ['--healthz-ip', '127.0.0.1', '--healthz-port', '9100']);
    hosts = [1, 2, 3].map((i) => tb.host(i));
    await expectFullMesh(tb);
  },
});

let fakeCount = 0;
/** A lease for a host that does not exist: enough to see it reach (or leave) every kernel. */
function fakeLease(): { key: string; value: string; route: string } {
  const n = 200 + ++fakeCount;
  const mac = `02:fa:ce:00:00:${n.toString(16).padStart(2, '0')}`;
  return {
    key: `${PREFIX}/subnets/10.5.${n}.0-24`,
    value: `{"PublicIP":"192.0.2.${n}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`,
    route: `10.5.${n}.0/24 via 10.5.${n}.0`,
  };
}

async function everyKernel(has: boolean, route: string, timeoutMs = 10_000): Promise<number> {
  const t0 = Date.now();
  await poll(async () => (await Promise.all(hosts.map((h) => kernelState(h)))).every((s) => s.routes.includes(route) === has), {
    timeoutMs,
    intervalMs: 50,
    what: `${route} to be ${has ? 'present' : 'gone'} on every host`,
  });
  return Date.now() - t0;
}

function pingAll(): PingHandle[] {
  const c = hosts.map((h) => h.containers[0]!);
  return [tb.startPing(c[0]!, c[1]!.ip, 20), tb.startPing(c[1]!, c[2]!.ip, 20), tb.startPing(c[2]!, c[0]!.ip, 20)];
}

async function stopPings(pings: PingHandle[]): Promise<{ received: number; lost: number }> {
  const results = await Promise.all(pings.map((p) => p.stop()));
  return { received: results.reduce((s, r) => s + r.received, 0), lost: results.reduce((s, r) => s + r.lost, 0) };
}

/** User+system CPU seconds the process has used, from /proc. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const warnings = (h: Host) => logEntries(currentRunLog(tb, h)).filter((e) => e.level === 'warn').length;

describe('etcd outages under traffic', () => {
  it('rides out etcd stopped for 30 s: no packet lost, one log line, little CPU, watching again within seconds', async () => {
    const pings = pingAll();
    const warnBefore = hosts.map(warnings);
    const cpuBefore = hosts.map((h) => cpuSeconds(h.agent!.pid));
    await tb.stopEtcd();
    // 30 s of outage is the scenario; there is no condition to wait for, only time to pass.
    await new Promise((r) => setTimeout(r, 30_000));
    const cpu = hosts.map((h, i) => cpuSeconds(h.agent!.pid) - cpuBefore[i]!);
    await tb.startEtcdAgain();
    const fake = fakeLease();
    expect((await tb.etcdctl(['put', fake.key, fake.value])).exitCode).toBe(0);
    const resumeMs = await everyKernel(true, fake.route, 15_000);
    const traffic = await stopPings(pings);
    console.log(`etcd stopped 30 s: ${traffic.received} pings answered, ${traffic.lost} lost; agent CPU during outage ${cpu.map((c) => c.toFixed(2)).join('/')} s; lease put after restart reached every kernel in ${resumeMs} ms`);
    expect(traffic.lost).toBe(0);
    expect(traffic.received).toBeGreaterThan(3000);
    for (const [i, h] of hosts.entries()) {
      expect(h.agent!.status).toBeUndefined();
      expect(warnings(h) - warnBefore[i]!).toBeLessThanOrEqual(2); // the outage, once per subsystem at most
      expect(cpu[i]).toBeLessThan(1.5);
    }
    expect(resumeMs).toBeLessThan(8000);
    const metrics = (await tb.httpGet(hosts[0]!, 'http://127.0.0.1:9100/metrics')).body;
    expect(metrics).toMatch(/^weft_etcd_outages_total 1$/m);
    // Every failed attempt is counted, though the outage was logged once.
    expect(metrics).toMatch(/^weft_etcd_errors_total\{operation="list"\} [1-9]/m);
    await poll(async () => /^weft_etcd_reachable 1$/m.test((await tb.httpGet(hosts[0]!, 'http://127.0.0.1:9100/metrics')).body), {
      timeoutMs: 10_000,
      what: 'the reachable gauge to come back',
    });
  });

  it('detects a frozen etcd (SIGSTOP) and catches up after it thaws', async () => {
    const pings = pingAll();
    const marks = hosts.map((h) => tb.agentLog(h).length);
    const since = (h: Host, i: number) => tb.agentLog(h).slice(marks[i]);
    tb.pauseEtcd();
    try {
      await poll(() => hosts.every((h, i) => /lost contact with etcd/.test(since(h, i))), {
        timeoutMs: 20_000,
        what: 'every agent to notice the frozen etcd',
      });
    } finally {
      tb.resumeEtcd();
    }
    const thawed = Date.now();
    await poll(() => hosts.every((h, i) => /etcd reachable again/.test(since(h, i))), { timeoutMs: 20_000, what: 'every agent to re-list' });
    const relistMs = Date.now() - thawed;
    const fake = fakeLease();
    expect((await tb.etcdctl(['put', fake.key, fake.value])).exitCode).toBe(0);
    const ms = await everyKernel(true, fake.route, 20_000);
    const traffic = await stopPings(pings);
    console.log(`etcd frozen: ${traffic.lost} pings lost; every agent re-listed ${relistMs} ms after the thaw; a lease put then reached every kernel in ${ms} ms`);
    expect(traffic.lost).toBe(0);
  });

  it('applies leases added and removed while the agents were cut off from etcd', async () => {
    const keep = fakeLease();
    const gone = fakeLease();
    await tb.etcdctl(['put', gone.key, gone.value]);
    await everyKernel(true, gone.route);
    const pings = pingAll();
    const marks = hosts.map((h) => tb.agentLog(h).length);
    // Drop every packet between the hosts and etcd, both ways: a black hole, not a refused
    // connection. Host-to-host traffic is bridged, so the overlay is untouched.
    const cut = async (action: 'add' | 'del') => {
      for (const h of hosts) {
        await ipIn(h.ns, ['route', action, 'blackhole', '192.0.2.254/32']);
        await ipIn(tb.underlay, ['route', action, 'blackhole', `${h.ip}/32`]);
      }
    };
    await cut('add');
    try {
      await poll(() => hosts.every((h, i) => /lost contact with etcd/.test(tb.agentLog(h).slice(marks[i]))), {
        timeoutMs: 20_000,
        what: 'agents to notice',
      });
      expect((await tb.etcdctl(['put', keep.key, keep.value])).exitCode).toBe(0);
      expect((await tb.etcdctl(['del', gone.key])).exitCode).toBe(0);
      expect((await kernelState(hosts[0]!)).routes).toContain(gone.route); // nothing can reach them yet
    } finally {
      await cut('del');
    }
    const t0 = Date.now();
    await everyKernel(true, keep.route, 20_000);
    await everyKernel(false, gone.route, 20_000);
    const traffic = await stopPings(pings);
    console.log(`agents cut off: converged ${Date.now() - t0} ms after the path came back; ${traffic.lost} pings lost`);
    expect(traffic.lost).toBe(0);
  });

  it('recovers from compaction past a frozen agent revision by listing again, without a watch hot-loop', async () => {
    const h1 = hosts[0]!;
    const added = fakeLease();
    const removed = fakeLease();
    await tb.etcdctl(['put', removed.key, removed.value]);
    await everyKernel(true, removed.route);
    process.kill(h1.agent!.pid, 'SIGSTOP');
    try {
      await tb.etcdctl(['put', added.key, added.value]);
      await tb.etcdctl(['del', removed.key]);
      for (let i = 0; i < 20; i++) await tb.etcdctl(['put', '/compaction-filler', String(i)]);
      const status = JSON.parse((await tb.etcdctl(['endpoint', 'status', '-w', 'json'])).stdout) as { Status: { header: { revision: number } } }[];
      const rev = status[0]!.Status.header.revision;
      expect((await tb.etcdctl(['compact', String(rev), '--physical'])).exitCode).toBe(0);
    } finally {
      process.kill(h1.agent!.pid, 'SIGCONT');
    }
    await everyKernel(true, added.route, 20_000);
    await everyKernel(false, removed.route, 20_000);
    // And an agent started after compaction lists from scratch.
    const runs = agentRuns(tb, h1).length;
    await tb.stopAgent(h1, 'SIGKILL');
    tb.startAgent(h1);
    await waitForRun(tb, h1, runs, 'ready');
    const lost = (currentRunLog(tb, h1).match(/lost contact with etcd/g) ?? []).length;
    const lostBefore = (agentRuns(tb, h1)[runs - 1]!.match(/lost contact with etcd/g) ?? []).length;
    expect(lost).toBe(0);
    expect(lostBefore).toBeLessThanOrEqual(3);
    expect((await kernelState(h1)).routes).toContain(added.route);
  });
});
