// Node status end to end: real agents publish their records while hosts are added one at a
// time, and the real CLI (`weft get leases -o wide`, `weft get nodes`, `weft describe lease`)
// shows each host ready once it has converged; a stopped agent's record goes at once.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { agentRuns, expectFullMesh, joinHost, kernelState, networkYaml, testbedFor, waitForRun, withNetwork } from './helpers.js';

const PREFIX = '/coreos.com/network';
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
let tb: Testbed;

testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml()) });

/** A kubectl-style table as rows keyed by header (no cell here contains a space). */
function parseTable(text: string): Record<string, string>[] {
  const [header, ...lines] = text.trimEnd().split('\n');
  const names = header!.split(/\s+/);
  return lines.map((l) => Object.fromEntries(l.split(/\s+/).map((cell, i) => [names[i]!, cell])));
}

async function weftTable(args: string[]): Promise<Record<string, string>[]> {
  const r = await tb.weft(args);
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return parseTable(r.stdout);
}

/** Polls `weft get leases -o wide` until every given host's row is READY with all its peers. */
async function waitAllReady(hosts: Host[], timeoutMs = 20_000): Promise<Record<string, string>[]> {
  const peers = hosts.length - 1;
  return poll(
    async () => {
      const rows = await weftTable(['get', 'leases', '-o', 'wide']);
      const ok = hosts.every((h) => rows.some((r) => r.NODE === h.name && r.READY === 'yes' && r.PEERS === `${peers}/${peers}`));
      return ok ? rows : undefined;
    },
    { timeoutMs, intervalMs: 200, what: `${hosts.map((h) => h.name).join(', ')} READY with ${peers}/${peers} peers in weft get leases -o wide` },
  );
}

describe('node status', () => {
  it('shows each host READY in weft get leases -o wide once it has converged, during a rolling addition', async () => {
    const joined: Host[] = [];
    for (const i of [1, 2, 3]) {
      const { host } = await joinHost(tb, i);
      joined.push(host);
      const rows = await waitAllReady(joined);
      expect(rows).toHaveLength(joined.length);
      for (const row of rows) {
        expect(row).toMatchObject({ VERSION, READY: 'yes' });
        expect(row['LAST-SYNC']).toMatch(/^\d+s$/);
      }
      // READY means converged: every host already holds a route to each other host's subnet.
      for (const h of joined) {
        const routes = (await kernelState(h)).routes;
        for (const peer of joined) {
          if (peer !== h) expect(routes).toContain(`${tb.readSubnetEnv(peer)!.subnet} via ${tb.readSubnetEnv(peer)!.subnet.network}`);
        }
      }
    }
    await expectFullMesh(tb);

    const nodes = await weftTable(['get', 'nodes']);
    expect(nodes.map((n) => [n.NAME, n.READY, n.SUBNET, n.PEERS, n.VERSION])).toEqual(
      joined.map((h) => [h.name, 'yes', tb.readSubnetEnv(h)!.subnet.toString(), '2/2', VERSION]),
    );
  });

  it('describes one lease with its holder\'s status', async () => {
    const h1 = tb.host(1);
    const name = tb.readSubnetEnv(h1)!.subnet.toKey();
    const r = await tb.weft(['describe', 'lease', name]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Name: +${name}\\nNetwork: +default\\nKey: +${PREFIX}/subnets/${name}\\n`));
    expect(r.stdout).toMatch(new RegExp(`\\nNode: +${h1.name}\\nPublic IP: +${h1.ip.replace(/\./g, '\\.')}\\nBackend: +vxlan, VNI 1, VTEP MAC [0-9a-f:]{17}\\n`));
    expect(r.stdout).toMatch(/\nEtcd Lease: +[0-9a-f]+, TTL 86400s, \S+ left \(expires \S+\)\nReservation: +<none>\n/);
    expect(r.stdout).toMatch(
      new RegExp(`\\nNode Status:\\n  Key: +${PREFIX}/_weft/nodes/default/${h1.name}\\n  Ready: +yes\\n  Peers: +2 programmed of 2 desired\\n  Last Sync: +\\d+s ago .*\\n  Version: +${VERSION.replace(/\./g, '\\.')}\\n`),
    );
  });

  it('removes a stopped agent\'s record at once, and publishes it again when the agent restarts', async () => {
    const h2 = tb.host(2);
    const name = tb.readSubnetEnv(h2)!.subnet.toKey();
    await tb.stopAgent(h2, 'SIGTERM');
    // The lease stays (a restart keeps the subnet); its status record does not.
    const rows = await weftTable(['get', 'leases', '-o', 'wide']);
    expect(rows.find((r) => r.NAME === name)).toMatchObject({ NODE: h2.name, READY: 'unknown', PEERS: '<none>' });
    expect((await weftTable(['get', 'nodes'])).map((n) => n.NAME)).toEqual([tb.host(1).name, tb.host(3).name]);
    expect(agentRuns(tb, h2).at(-1)).not.toMatch(/cannot remove the node status record/);

    const runs = agentRuns(tb, h2).length;
    tb.startAgent(h2);
    await waitForRun(tb, h2, runs, 'ready');
    await waitAllReady([1, 2, 3].map((i) => tb.host(i)));
  });
});
