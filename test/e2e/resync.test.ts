// The periodic resync as the kernel watch's safety net: with the agent's notification reader
// (rtmon) stopped, a route, a neighbour and an FDB entry deleted by hand go unseen by the
// watch, and the next resync (every 2 s here) finds them missing in its dump, read into the
// tables in place, and puts them back.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { execIn, ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { expectFullMesh, findLogs, kernelState, linkMac, networkYaml, testbedFor, withNetwork } from './helpers.js';

let tb: Testbed;

testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml()) });

/** The pids of a process's children named `comm` (every thread's children). */
function childrenNamed(pid: number, comm: string): number[] {
  const out: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number)) {
      if (readFileSync(`/proc/${child}/comm`, 'utf8').trim() === comm) out.push(child);
    }
  }
  return out;
}

async function startHost(index: number): Promise<Host> {
  const host = await tb.addHost(index);
  tb.startAgent(host, ['--resync-interval', '2s']);
  await tb.waitForSubnetEnv(host);
  await poll(() => findLogs(tb.agentLog(host), 'ready').length > 0, { what: `${host.name} ready` });
  return host;
}

describe('the periodic resync', () => {
  it('repairs a route, a neighbour and an FDB entry that the kernel watch did not see', async () => {
    const h1 = await startHost(1);
    const h2 = await startHost(2);
    await expectFullMesh(tb);
    const env2 = tb.readSubnetEnv(h2)!;
    const mac2 = (await linkMac(h2, 'flannel.1'))!;
    const want = await kernelState(h1);
    expect(want.routes).toContain(`${env2.subnet} via ${env2.subnet.network}`);
    expect(want.neighbours).toContain(`${env2.subnet.network} ${mac2}`);
    expect(want.fdb).toContain(`${mac2} ${h2.ip}`);

    const rtmon = await poll(() => childrenNamed(h1.agent!.pid!, 'rtmon')[0], { what: "h1's rtmon" });
    const resyncsBefore = findLogs(tb.agentLog(h1), 'drift repaired', { trigger: 'resync' }).length;
    process.kill(rtmon, 'SIGSTOP'); // the watch sees nothing from here on
    try {
      await ipIn(h1.ns, ['route', 'del', env2.subnet.toString(), 'dev', 'flannel.1']);
      await ipIn(h1.ns, ['neigh', 'del', env2.subnet.network.toString(), 'dev', 'flannel.1']);
      await execIn(h1.ns, 'bridge', ['fdb', 'del', mac2, 'dev', 'flannel.1', 'dst', h2.ip, 'self']);
      expect(await kernelState(h1)).not.toEqual(want);
      await poll(async () => JSON.stringify(await kernelState(h1)) === JSON.stringify(want), { timeoutMs: 10_000, intervalMs: 50, what: 'the resync to repair all three' });
    } finally {
      process.kill(rtmon, 'SIGCONT');
    }
    const repairs = findLogs(tb.agentLog(h1), 'drift repaired', { trigger: 'resync' });
    expect(repairs.length).toBeGreaterThan(resyncsBefore);
    expect(findLogs(tb.agentLog(h1), 'drift repaired', { trigger: 'drift' })).toEqual([]);
  });
});
