// The kernel channel end to end: agents program the kernel over netlink from their own
// process (no `ip`/`bridge` process per lease event), see entries and devices deleted by
// hand at once through the kernel's notifications and repair them without waiting for the
// periodic resync, and fall back to iproute2 (saying so once) when netlink is not available.
//
// `ip` and `bridge` are found through PATH shims that count each start, so the number of
// processes an agent starts is read, not guessed. The agents' resync interval is an hour:
// far longer than any deadline here, so a repair can only come from a notification.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { execIn, ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { applyYaml, expectFullMesh, findLogs, kernelState, linkMac, networkYaml, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';
const AGENT_ARGS = ['--resync-interval', '1h'];
/** How long a repair may take here: well under the resync interval, with room for a busy machine. */
const REPAIR_DEADLINE_MS = 3_000;
let tb: Testbed;
let shims: string;

testbedFor((created) => (tb = created), {
  setup: async () => {
    await applyYaml(tb, 'network', networkYaml());
    // PATH shims: each start of ip or bridge appends a line to <host>.starts, then runs the real tool.
    shims = join(tb.workDir, 'shims');
    mkdirSync(shims, { recursive: true });
    for (const tool of ['ip', 'bridge']) {
      const real = execFileSync('sh', ['-c', `command -v ${tool}`]).toString().trim();
      const script = `#!/bin/sh\necho "${tool} $*" >> "$WEFT_TEST_STARTS"\nexec ${real} "$@"\n`;
      writeFileSync(join(shims, tool), script);
      chmodSync(join(shims, tool), 0o755);
    }
  },
});

function startsFile(host: Host): string {
  return join(tb.workDir, `${host.name}.starts`);
}

/** ip/bridge processes started by the agent on host so far (its own log of starts). */
function starts(host: Host): string[] {
  const f = startsFile(host);
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

async function startHost(index: number, env: Record<string, string> = {}) {
  const host = await tb.addHost(index);
  tb.startAgent(host, AGENT_ARGS, { env: { PATH: `${shims}:${process.env.PATH ?? ''}`, WEFT_TEST_STARTS: startsFile(host), ...env } });
  await tb.waitForSubnetEnv(host);
  const container = await tb.addContainer(host);
  await poll(() => findLogs(tb.agentLog(host), 'ready').length > 0, { what: `${host.name} ready` });
  return { host, container };
}

async function has(host: Host, what: 'routes' | 'neighbours' | 'fdb', entry: string): Promise<boolean> {
  return (await kernelState(host))[what].includes(entry);
}

/** Runs `del`, then waits until `present` holds again; returns how long that took (ms). */
async function repairTime(del: () => Promise<unknown>, present: () => Promise<boolean>, what: string): Promise<number> {
  expect(await present(), `${what} present before the deletion`).toBe(true);
  const t0 = Date.now();
  await del();
  await poll(present, { timeoutMs: REPAIR_DEADLINE_MS, intervalMs: 20, what: `${what} to be repaired` });
  return Date.now() - t0;
}

describe('the kernel channel', () => {
  it('repairs a route, a neighbour, an FDB entry and the device deleted by hand, under a running ping, without a resync', async () => {
    const { host: h1, container: c1 } = await startHost(1);
    const { host: h2, container: c2 } = await startHost(2);
    await expectFullMesh(tb);
    expect(findLogs(tb.agentLog(h1), 'kernel channel: netlink').length).toBe(1);

    const env2 = tb.readSubnetEnv(h2)!;
    const mac2 = (await linkMac(h2, 'flannel.1'))!;
    const route = `${env2.subnet} via ${env2.subnet.network}`;
    const neighbour = `${env2.subnet.network} ${mac2}`;
    const fdb = `${mac2} ${h2.ip}`;
    const ping = tb.startPing(c1, c2.ip, 20);
    const times: Record<string, number> = {};
    try {
      times.route = await repairTime(
        () => ipIn(h1.ns, ['route', 'del', env2.subnet.toString(), 'dev', 'flannel.1']),
        () => has(h1, 'routes', route),
        'the route',
      );
      times.neighbour = await repairTime(
        () => ipIn(h1.ns, ['neigh', 'del', env2.subnet.network.toString(), 'dev', 'flannel.1']),
        () => has(h1, 'neighbours', neighbour),
        'the neighbour',
      );
      times.fdb = await repairTime(
        () => execIn(h1.ns, 'bridge', ['fdb', 'del', mac2, 'dev', 'flannel.1', 'dst', h2.ip, 'self']),
        () => has(h1, 'fdb', fdb),
        'the FDB entry',
      );
      await tb.waitReachable(c1, c2.ip, REPAIR_DEADLINE_MS);

      // The device: created again (a new MAC, published in the lease, so h2 follows), with
      // its address and every entry, and traffic flows again.
      const macBefore = await linkMac(h1, 'flannel.1');
      const t0 = Date.now();
      await ipIn(h1.ns, ['link', 'del', 'flannel.1']);
      await poll(async () => (await linkMac(h1, 'flannel.1')) !== undefined && (await has(h1, 'routes', route)) && (await has(h1, 'fdb', fdb)), {
        timeoutMs: REPAIR_DEADLINE_MS,
        intervalMs: 20,
        what: 'flannel.1 and its entries to be back',
      });
      times.device = Date.now() - t0;
      expect(await linkMac(h1, 'flannel.1')).not.toBe(macBefore);
      await tb.waitReachable(c1, c2.ip, 10_000);
      times.traffic = Date.now() - t0;
    } finally {
      const p = await ping.stop();
      console.log(`repair times (ms): ${JSON.stringify(times)}; ping ${p.received}/${p.sent} answered`);
      expect(p.received).toBeGreaterThan(0);
    }
    // Each repair was a drift pass, logged as such; the periodic resync never ran.
    const log = tb.agentLog(h1);
    expect(findLogs(log, 'drift repaired', { trigger: 'drift' }).length).toBeGreaterThanOrEqual(4);
    expect(findLogs(log, 'drift repaired', { trigger: 'resync' })).toEqual([]);
    expect(findLogs(log, 'vxlan device disappeared; recreating it').length).toBe(1);
  });

  it('starts no ip or bridge process per lease event (100 events, each awaited in the kernel)', async () => {
    const h1 = tb.host(1);
    // The device repair above may still have a retry pass due (it re-reads the device): wait
    // until the agent has started nothing for a second before counting.
    let last = { n: -1, at: 0 };
    await poll(() => {
      const n = starts(h1).length;
      if (n !== last.n) last = { n, at: Date.now() };
      return Date.now() - last.at >= 1_000;
    }, { timeoutMs: 10_000, what: 'h1 to start no process for a second' });
    const before = starts(h1).length;
    const eventStarts = await leaseEvents(h1, 100);
    const after = starts(h1).length;
    console.log(`netlink agent: ${after - before} ip/bridge processes over 100 lease events`);
    expect(eventStarts).toBe(100);
    expect(starts(h1).slice(before)).toEqual([]);
  });

  it('falls back to iproute2 when told to (or when netlink cannot load), says so once, and still converges', async () => {
    const { host: h3, container: c3 } = await startHost(3, { WEFT_KERNEL_CHANNEL: 'iproute2' });
    await tb.waitReachable(c3, tb.host(1).containers[0]!.ip, 10_000);
    await tb.waitReachable(tb.host(2).containers[0]!, c3.ip, 10_000);
    const log = tb.agentLog(h3);
    expect(findLogs(log, /^netlink is unavailable; programming the kernel with iproute2/).length).toBe(1);
    expect(findLogs(log, 'kernel channel: netlink')).toEqual([]);
    // The same count as above, on the fallback: processes per event (the count can fail).
    const before = starts(h3).length;
    await leaseEvents(h3, 10);
    const started = starts(h3).length - before;
    console.log(`iproute2 agent: ${started} ip/bridge processes over 10 lease events`);
    expect(started).toBeGreaterThanOrEqual(10);
    await poll(async () => (await kernelState(h3)).routes.length === 2, { what: 'h3 back to its two peers' });
  });
});

/**
 * `count` lease events (a peer's lease put, then deleted, and so on), each awaited until the
 * host's kernel shows it (a route appearing or going), so that the agent handles each on
 * its own rather than folding them into one pass. Returns the number of events.
 */
async function leaseEvents(host: Host, count: number): Promise<number> {
  let done = 0;
  for (let i = 0; done < count; i++) {
    const subnet = `10.5.${200 + (i % 50)}.0`;
    const key = `${PREFIX}/subnets/${subnet}-24`;
    const mac = `02:ee:00:00:00:${(i % 50).toString(16).padStart(2, '0')}`;
    const value = JSON.stringify({ PublicIP: `192.0.2.${200 + (i % 50)}`, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: mac } });
    const routed = async () => (await kernelState(host)).routes.some((r) => r.startsWith(`${subnet}/24 `));
    expect((await tb.etcdctl(['put', key, value])).exitCode).toBe(0);
    await poll(routed, { timeoutMs: 10_000, intervalMs: 10, what: `${subnet} routed on ${host.name}` });
    done++;
    if (done === count) break;
    expect((await tb.etcdctl(['del', key])).exitCode).toBe(0);
    await poll(async () => !(await routed()), { timeoutMs: 10_000, intervalMs: 10, what: `${subnet} gone from ${host.name}` });
    done++;
  }
  // Leave no fake peer behind for the next test.
  for (let i = 0; i < 50; i++) await tb.etcdctl(['del', `${PREFIX}/subnets/10.5.${200 + i}.0-24`]);
  return done;
}
