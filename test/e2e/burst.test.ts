// A burst of 1,000 lease events costs a handful of kernel batches, not 1,000: the agent folds
// whatever arrives while it reconciles into the next pass.
import { describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Testbed } from '../../src/testbed/topology.js';
import { currentRunLog, findLogs, joinHost, networkYaml, peerLeaseBurst, testbedFor, withNetwork } from './helpers.js';

const PEERS = 1000;
let tb: Testbed;
testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml({ cidr: '10.0.0.0/8' })) });

async function routeCount(ns: string): Promise<number> {
  const r = await execIn(ns, 'ip', ['-json', 'route', 'show', 'dev', 'flannel.1']);
  return (JSON.parse(r.stdout || '[]') as unknown[]).length;
}

describe('a burst of lease events', () => {
  it(`programs ${PEERS} peers added at once, and removes them, in a handful of reconciles`, async () => {
    const { host } = await joinHost(tb, 1);
    await poll(() => findLogs(currentRunLog(tb, host), 'ready').length > 0, { what: 'h1 ready' });
    // A pass logs 'dataplane converged', or, when it carried one peer's change, that peer's line with its outcome.
    const passes = () => {
      const log = currentRunLog(tb, host);
      const single = ['peer added', 'peer removed'].flatMap((m) => findLogs(log, m)).filter((e) => e.operations !== undefined);
      return findLogs(log, 'dataplane converged').length + single.length;
    };

    const before = passes();
    await peerLeaseBurst(tb, 'put', 0, PEERS);
    await poll(async () => (await routeCount(host.ns)) === PEERS, { timeoutMs: 30_000, what: `${PEERS} routes on h1` });
    const added = passes() - before;

    const mid = passes();
    await peerLeaseBurst(tb, 'delete', 0, PEERS);
    await poll(async () => (await routeCount(host.ns)) === 0, { timeoutMs: 30_000, what: 'the routes to go' });
    const removed = passes() - mid;

    console.log(`${PEERS} leases added: ${added} reconciles; removed: ${removed} reconciles`);
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThanOrEqual(20);
    expect(removed).toBeLessThanOrEqual(20);

    // The log tells of every peer, but in a summary line per pass rather than one per peer.
    const log = currentRunLog(tb, host);
    const summaries = findLogs(log, 'peers changed');
    const single = (msg: string) => findLogs(log, msg).length;
    const sum = (field: 'added' | 'removed') => summaries.reduce((n, e) => n + Number(e[field]), 0);
    expect(sum('added') + single('peer added')).toBe(PEERS);
    expect(sum('removed') + single('peer removed')).toBe(PEERS);
    expect(summaries.length + single('peer added') + single('peer removed')).toBeLessThanOrEqual(2 * 20 * (added + removed));
    expect(summaries.length).toBeGreaterThan(0);
  });
});
