// The first pass at start with thousands of peers goes in chunks, the kernel working on one
// (from the bulk thread's netlink socket) while the agent models the next; the kernel watch
// starts after it. Proved here with a real agent at 1,500 peers: every entry in place, a
// restart that re-applies nothing and removes what went stale, and drift repaired at once
// after a bulk start (the watch, started late, missed nothing).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import { REPO_ROOT } from '../../src/testbed/paths.js';
import { poll } from '../../src/testbed/poll.js';
import { Testbed, type Host } from '../../src/testbed/topology.js';
import { agentRuns, applyYaml, findLogs, networkYaml, waitForRun } from './helpers.js';

const PEERS = 1500;
const AGENT_ARGS = ['--resync-interval', '1h', '--log-level', 'debug'];
let tb: Testbed;
beforeAll(async () => {
  tb = await Testbed.create();
  await applyYaml(tb, 'network', networkYaml({ cidr: '10.0.0.0/8' }));
});
afterAll(async () => {
  await tb?.teardown();
});

/** Writes (or deletes) peer leases from..to-1 from one process, all requests in flight at once. */
async function leases(action: 'put' | 'delete', from: number, to: number): Promise<void> {
  const script = `
    const { Etcd3 } = await import(${JSON.stringify(join(REPO_ROOT, 'node_modules', 'etcd3', 'lib', 'index.js'))});
    const c = new Etcd3({ hosts: process.argv[1] });
    const ops = [];
    for (let i = ${from}; i < ${to}; i++) {
      const k = '/coreos.com/network/subnets/10.' + (100 + (i >> 8)) + '.' + (i & 255) + '.0-24';
      const mac = '02:b0:00:00:' + (i >> 8).toString(16).padStart(2, '0') + ':' + (i & 255).toString(16).padStart(2, '0');
      const v = '{"PublicIP":"198.18.' + (i >> 8) + '.' + (i & 255) + '","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"' + mac + '"}}';
      ops.push(${action === 'put' ? 'c.put(k).value(v)' : 'c.delete().key(k)'});
    }
    await Promise.all(ops);
    c.close();
  `;
  const r = await execIn(tb.underlay, process.execPath, ['--input-type=module', '-e', script, tb.etcdEndpoint]);
  expect(r.exitCode, r.stderr).toBe(0);
}

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
    await leases('put', 0, PEERS);
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
    await leases('delete', PEERS - 100, PEERS);
    tb.startAgent(host, AGENT_ARGS);
    const log = await waitForRun(tb, host, 1, 'ready', 30_000);
    expect(await counts(host)).toEqual([PEERS - 100, PEERS - 100, PEERS - 100]);
    // Only the 100 gone peers' entries were touched: 300 deletions.
    expect(converged(log)[0]).toMatchObject({ operations: 300, failures: 0 });
    expect(findLogs(log, 'bulk pass')[0]).toMatchObject({ operations: 0, failures: 0 });
  });
});
