// The testbed itself, without weft: namespaces, underlay, etcd, containers, traffic and
// teardown. If these fail, e2e failures say nothing about weft.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, execIn, ipBatch, listNetns, netnsPids, newRunId, nsName, nsPrefix } from '../../src/testbed/netns.js';
import { parseSubnetEnv } from '../../src/testbed/parse.js';
import { Testbed, type Container, type Host } from '../../src/testbed/topology.js';
import { waitFor } from '../helpers/wait.js';

// Stands in for bin/weft: as `agent` it proves where it runs (its netns, etcd reachable from
// there), writes a subnet.env and waits for a signal; as anything else it echoes its argv.
const STUB = `
import { readlinkSync, renameSync, writeFileSync } from 'node:fs';
const argv = process.argv.slice(2);
const flag = (n) => argv[argv.indexOf(n) + 1];
const netns = readlinkSync('/proc/self/ns/net');
if (argv[0] !== 'agent') {
  process.stdout.write(JSON.stringify({ argv, netns }));
  process.exit(0);
}
const health = await (await fetch(flag('--etcd-endpoints') + '/health')).json();
const node = flag('--node-name');
const file = flag('--subnet-file');
writeFileSync(file + '.tmp', 'FLANNEL_NETWORK=10.5.0.0/16\\nFLANNEL_SUBNET=10.5.' + node.slice(1) + '.1/24\\nFLANNEL_MTU=1450\\nFLANNEL_IPMASQ=false\\n');
renameSync(file + '.tmp', file);
console.log('stub up node=' + node + ' netns=' + netns + ' etcd=' + health.health);
process.on('SIGTERM', () => {
  if (argv.includes('--ignore-sigterm')) return console.log('ignoring SIGTERM');
  console.log('stopping');
  process.exit(0);
});
setInterval(() => {}, 1000);
`;

function subnetEnv(i: number, mtu: number): string {
  return `FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.${i}.1/24\nFLANNEL_MTU=${mtu}\nFLANNEL_IPMASQ=false\n`;
}

async function netnsInode(ns: string): Promise<string> {
  return (await execIn(ns, 'readlink', ['/proc/self/ns/net'])).stdout.trim();
}

describe('testbed', () => {
  const runId = newRunId();
  const stubDir = mkdtempSync(join(tmpdir(), 'weft-stub-'));
  const stub = join(stubDir, 'weft-stub.mjs');
  let tb: Testbed;
  let stalePid: number;
  let staleExit: Promise<NodeJS.Signals | null>;
  const hosts: Host[] = [];
  const containers: Container[] = [];

  beforeAll(async () => {
    writeFileSync(stub, STUB);
    // Leftovers of a "killed earlier run" with the same id: an underlay with a bridge and a
    // process still inside it. The new run must replace them, not trip over them.
    const staleUl = nsName(runId, 'ul');
    await createNetns(staleUl);
    await ipBatch(staleUl, ['link add br0 type bridge', 'addr add 192.0.2.254/24 dev br0']);
    const sleeper = spawn('ip', ['netns', 'exec', staleUl, 'sleep', '300'], { stdio: 'ignore' });
    stalePid = sleeper.pid!;
    staleExit = new Promise((resolve) => sleeper.once('exit', (_code, signal) => resolve(signal)));
    await waitFor(async () => (await netnsPids(staleUl)).includes(stalePid), { what: 'stale sleeper' });
    tb = await Testbed.create({ runId, weftBin: stub, graceMs: 1000 });
  });

  afterAll(async () => {
    await tb?.teardown();
    rmSync(stubDir, { recursive: true, force: true });
  });

  it('replaced the stale namespace of an earlier run with the same id', async () => {
    expect(await staleExit).toBe('SIGKILL');
    expect(await netnsPids(tb.underlay)).toEqual([tb.etcdPid]);
  });

  it('reaches etcd in the underlay from a host namespace', async () => {
    for (const i of [1, 2, 3, 4]) hosts.push(await tb.addHost(i));
    const [h1, h2] = hosts as [Host, Host];
    expect((await tb.etcdctl(['put', '/weft-testbed/k', 'from-h1'], { from: h1 })).exitCode).toBe(0);
    const got = await tb.etcdctl(['get', '--print-value-only', '/weft-testbed/k'], { from: h2 });
    expect(got.stdout.trim()).toBe('from-h1');
    expect((await tb.etcdctl(['get', '--print-value-only', '/weft-testbed/k'])).stdout.trim()).toBe('from-h1');
    expect((await tb.ping(h1, h2.ip, { count: 2, intervalSec: 0.05 })).received).toBe(2);
  });

  it('connects containers across hosts through host-gw style routes', async () => {
    const [h1, h2] = hosts as [Host, Host];
    writeFileSync(h1.subnetFile, subnetEnv(1, 1500));
    writeFileSync(h2.subnetFile, subnetEnv(2, 1500));
    const c1 = await tb.addContainer(h1);
    // c2's namespace made ahead (a pod sandbox), then wired from its subnet.env.
    await tb.prepareContainer(h2);
    await expect(tb.prepareContainer(h2)).rejects.toThrow(/container c2 exists/);
    const c2 = await tb.addContainer(h2);
    containers.push(c1, c2);
    expect([c1.ip, c2.ip]).toEqual(['10.5.1.2', '10.5.2.2']);
    expect((await tb.ping(c1, c2.ip, { count: 1, waitSec: 0.2 })).received).toBe(0);
    await expect(tb.firstAnswer(c1, c2.ip, 1_000)).rejects.toThrow(/did not answer/);
    // Pings every 10 ms from before the routes exist: the first answer is dated after they do.
    const answered = tb.firstAnswer(c1, c2.ip, 5_000);
    await waitFor(async () => (await netnsPids(c1.ns)).length > 0, { what: 'ping to start' });
    const routedAt = Date.now();
    await ipBatch(h1.ns, [`route add 10.5.2.0/24 via ${h2.ip}`]);
    await ipBatch(h2.ns, [`route add 10.5.1.0/24 via ${h1.ip}`]);
    expect(await answered).toBeGreaterThanOrEqual(routedAt);
    const r = await tb.ping(c1, c2.ip, { count: 3, intervalSec: 0.05 });
    expect(r).toMatchObject({ sent: 3, received: 3, lost: 0 });
    expect(r.rttAvgMs).toBeGreaterThan(0);
  });

  it('connects containers across hosts through a hand-made flannel-style vxlan', async () => {
    const [, , h3, h4] = hosts as [Host, Host, Host, Host];
    const env3 = parseSubnetEnv(subnetEnv(3, 1450));
    const env4 = parseSubnetEnv(subnetEnv(4, 1450));
    const c3 = await tb.addContainer(h3, { env: env3 });
    const c4 = await tb.addContainer(h4, { env: env4 });
    const mac = (i: number) => `0e:00:00:00:00:0${i}`;
    const vtep = (self: Host, peer: Host) => [
      `link add flannel.1 address ${mac(self.index)} type vxlan id 1 local ${self.ip} dev eth0 dstport 8472 nolearning`,
      `link set flannel.1 mtu 1450 up`,
      `addr add 10.5.${self.index}.0/32 dev flannel.1`,
      `neigh replace 10.5.${peer.index}.0 lladdr ${mac(peer.index)} dev flannel.1 nud permanent`,
      `route add 10.5.${peer.index}.0/24 via 10.5.${peer.index}.0 dev flannel.1 onlink`,
    ];
    await ipBatch(h3.ns, vtep(h3, h4));
    await ipBatch(h4.ns, vtep(h4, h3));
    for (const [self, peer] of [[h3, h4], [h4, h3]] as const) {
      const r = await execIn(self.ns, 'bridge', ['fdb', 'append', mac(peer.index), 'dev', 'flannel.1', 'dst', peer.ip]);
      expect(r.exitCode).toBe(0);
    }
    expect((await tb.ping(c3, c4.ip, { count: 3, intervalSec: 0.05 })).received).toBe(3);
    // MTU 1450 inside the container: a full-size DF packet crosses, one byte more does not.
    const big = await execIn(c3.ns, 'ping', ['-n', '-q', '-c', '1', '-W', '1', '-M', 'do', '-s', String(1450 - 28), c4.ip]);
    expect(big.exitCode).toBe(0);
    const tooBig = await execIn(c3.ns, 'ping', ['-n', '-q', '-c', '1', '-W', '0.2', '-M', 'do', '-s', String(1451 - 28), c4.ip]);
    expect(tooBig.exitCode).not.toBe(0);
  });

  it('runs a long ping and reports it per sequence number', async () => {
    const [c1, c2] = containers as [Container, Container];
    const ping = tb.startPing(c1, c2.ip, 20);
    await waitFor(async () => (await netnsPids(c1.ns)).length > 0, { what: 'ping to start' });
    await new Promise((r) => setTimeout(r, 300)); // the measurement window itself, not a wait for a condition
    const r = await ping.stop();
    expect(r.sent).toBeGreaterThanOrEqual(5);
    expect(r).toMatchObject({ lost: 0, lostSeqs: [] });
    expect(r.received).toBe(r.sent);
  });

  it('starts an agent in the host namespace and stops it with SIGTERM or, if ignored, SIGKILL', async () => {
    const h5 = await tb.addHost(5);
    const h6 = await tb.addHost(6, { segment: 1 });
    expect(h6.ip).toBe('198.51.100.6');
    const a5 = tb.startAgent(h5, ['--resync-interval', '1s']);
    const a6 = tb.startAgent(h6, ['--ignore-sigterm']);
    const env5 = await tb.waitForSubnetEnv(h5);
    const env6 = await tb.waitForSubnetEnv(h6);
    expect(env5.subnet.toString()).toBe('10.5.5.0/24');
    expect(env6.bridgeIp.toString()).toBe('10.5.6.1');
    // etcd answered the stub from inside the host namespaces, including the routed segment.
    // The stub logs after it writes subnet.env, so each log line is awaited on its own.
    for (const h of [h5, h6]) await waitFor(() => /stub up/.test(tb.agentLog(h)), { what: `${h.name}'s agent log line` });
    expect(tb.agentLog(h5)).toContain(`stub up node=h5 netns=${await netnsInode(h5.ns)} etcd=true`);
    expect(tb.agentLog(h6)).toContain(`netns=${await netnsInode(h6.ns)} etcd=true`);

    const c5 = await tb.addContainer(h5);
    const c6 = await tb.addContainer(h6);
    expect(c5.ip).toBe('10.5.5.2');
    await ipBatch(h5.ns, [`route add 10.5.6.0/24 via 192.0.2.254`]);
    await ipBatch(tb.underlay, [`route add 10.5.6.0/24 via ${h6.ip}`, `route add 10.5.5.0/24 via ${h5.ip}`]);
    expect((await tb.ping(c5, c6.ip, { count: 2, intervalSec: 0.05 })).received).toBe(2);

    expect(await tb.stopAgent(h5)).toEqual({ code: 0, signal: null });
    expect(await tb.stopAgent(h6)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(tb.agentLog(h6)).toContain('ignoring SIGTERM');
    for (const a of [a5, a6]) expect(existsSync(`/proc/${a.pid}`)).toBe(false);
  });

  it('runs the CLI in the underlay against the testbed etcd', async () => {
    const r = await tb.weft(['get', 'leases', '-o', 'wide']);
    const echoed = JSON.parse(r.stdout) as { argv: string[]; netns: string };
    expect(echoed.argv).toEqual(['get', 'leases', '-o', 'wide', '--etcd-endpoints', tb.etcdEndpoint]);
    expect(echoed.netns).toBe(await netnsInode(tb.underlay));
  });

  it('tears down every namespace, process and file of the run', async () => {
    const etcdPid = tb.etcdPid!;
    const agentPids = [...tb.hosts.values()].flatMap((h) => (h.agent ? [h.agent.pid] : []));
    tb.startAgent(tb.host(1));
    await tb.waitForSubnetEnv(tb.host(1));
    agentPids.push(tb.host(1).agent!.pid);
    expect((await listNetns()).filter((n) => n.startsWith(nsPrefix(runId))).length).toBe(1 + 6 + 6);
    await tb.removeHost(tb.host(6));
    const left = (await listNetns()).filter((n) => n.startsWith(nsPrefix(runId)));
    expect(left.length).toBe(1 + 5 + 5);
    expect(left.filter((n) => /-[hc]6$/.test(n))).toEqual([]);
    await tb.teardown();
    expect((await listNetns()).filter((n) => n.startsWith(nsPrefix(runId)))).toEqual([]);
    for (const pid of [etcdPid, ...agentPids]) expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(existsSync(tb.workDir)).toBe(false);
  });
});
