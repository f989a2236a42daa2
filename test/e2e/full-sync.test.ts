// The first pass at start with thousands of peers goes in chunks, the kernel working on one
// (from the bulk thread's netlink socket) while the agent models the next; the kernel watch
// starts after it. Proved here with a real agent at 1,500 peers: every entry in place, a
// restart that re-applies nothing and removes what went stale, and drift repaired at once
// after a bulk start (the watch, started late, missed nothing).
import { describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { agentRuns, findLogs, networkYaml, peerLeaseBurst, testbedFor, waitForRun, withNetwork } from './helpers.js';

const PEERS = 1500;
const AGENT_ARGS = ['--resync-interval', '1h', '--log-level', 'debug'];
let tb: Testbed;
testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml({ cidr: '10.0.0.0/8' })) });

async function counts(host: Host): Promise<number[]> {
  const n = async (tool: string, args: string[]) => (JSON.parse((await execIn(host.ns, tool, ['-json', ...args])).stdout || '[]') as unknown[]).length;
  return [
    await n('ip', ['route', 'show', 'dev', 'flannel.1']),
    await n('ip', ['neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent']),
    await n('bridge', ['fdb', 'show', 'dev', 'flannel.1']),
  ];
}

const converged = (log: string) => findLogs(log, 'dataplane converged');

describe(`the first pass at ${PEERS} peers`, () => {
  let host: Host;

  it('programs every peer in one bulk pass (in chunks), without a refusal', async () => {
    await peerLeaseBurst(tb, 'put', 0, PEERS);
    host = await tb.addHost(1);
    tb.startAgent(host, AGENT_ARGS);
    const log = await waitForRun(tb, host, 0, 'ready', 30_000);
    expect(await counts(host)).toEqual([PEERS, PEERS, PEERS]);
    expect(converged(log)[0]).toMatchObject({ operations: 3 * PEERS, failures: 0 });
    const [bulk] = findLogs(log, 'bulk pass');
    expect(bulk).toMatchObject({ operations: 3 * PEERS, failures: 0 });
    expect(bulk!.chunks).toBeGreaterThan(1);
    expect(findLogs(log, /refused/)).toEqual([]);
  });

  it('repairs a route deleted by hand right after the start, with the resync an hour away', async () => {
    const route = '10.100.7.0/24';
    await execIn(host.ns, 'ip', ['route', 'del', route, 'dev', 'flannel.1']);
    await poll(async () => (await execIn(host.ns, 'ip', ['route', 'show', route, 'dev', 'flannel.1'])).stdout.includes('via'), {
      timeoutMs: 5000,
      what: 'the route to come back',
    });
    expect(findLogs(agentRuns(tb, host)[0]!, 'drift repaired', { trigger: 'drift' }).length).toBeGreaterThan(0);
  });

  it('restarts re-applying nothing, removing the entries of leases that went while it was down', async () => {
    await tb.stopAgent(host, 'SIGKILL');
    await peerLeaseBurst(tb, 'delete', PEERS - 100, PEERS);
    tb.startAgent(host, AGENT_ARGS);
    const log = await waitForRun(tb, host, 1, 'ready', 30_000);
    expect(await counts(host)).toEqual([PEERS - 100, PEERS - 100, PEERS - 100]);
    // Only the 100 gone peers' entries were touched: 300 deletions.
    expect(converged(log)[0]).toMatchObject({ operations: 300, failures: 0 });
    expect(findLogs(log, 'bulk pass')[0]).toMatchObject({ operations: 0, failures: 0 });
  });
});
