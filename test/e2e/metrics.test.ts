// /metrics of a running agent, scraped over its health port inside its host namespace, as
// hosts join and leave: the series an operator watches move the way the fleet does. The same
// changes are checked in the agent's log, once each.
import { describe, expect, it } from 'vitest';
import { ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { applyYaml, currentRunLog, findLogs, joinHost, kernelState, networkYaml, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';
const METRICS_URL = 'http://127.0.0.1:9120/metrics';
let tb: Testbed;
let h1: Host;

testbedFor((created) => (tb = created), {
  setup: async () => {
    await applyYaml(tb, 'network', networkYaml());
    ({ host: h1 } = await joinHost(tb, 1, ['--healthz-ip', '127.0.0.1', '--healthz-port', '9120', '--resync-interval', '2s']));
    await joinHost(tb, 2);
  },
});

/** Every sample of a Prometheus text exposition, by series ("name{labels}"). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(): Promise<Map<string, number>> {
  const r = await tb.httpGet(h1, METRICS_URL);
  expect(r.status).toBe(200);
  return parseMetrics(r.body);
}

const value = (m: Map<string, number>, series: string): number => {
  const v = m.get(series);
  if (v === undefined) throw new Error(`no series ${series}`);
  return v;
};
const ops = (m: Map<string, number>, kind: string, result = 'ok') => value(m, `weft_kernel_operations_total{kind="${kind}",result="${result}"}`);

/** Polls the scrape until check passes; returns that scrape. */
async function scrapeUntil(what: string, check: (m: Map<string, number>) => boolean): Promise<Map<string, number>> {
  return poll(
    async () => {
      const m = await scrape();
      return check(m) ? m : undefined;
    },
    { timeoutMs: 15_000, what },
  );
}

describe('agent metrics in a running fleet', () => {
  it('reports the lease, the peers and the kernel work once the agent is ready', async () => {
    const m = await scrapeUntil('h1 ready with its one peer programmed', (s) => s.get('weft_agent_ready') === 1 && s.get('weft_peers_programmed') === 1);
    expect(value(m, 'weft_leases')).toBe(2);
    expect(value(m, 'weft_peers_desired')).toBe(1);
    for (const kind of ['route', 'neigh', 'fdb']) {
      expect(ops(m, kind), kind).toBeGreaterThanOrEqual(1);
      expect(ops(m, kind, 'failed'), kind).toBe(0);
    }
    expect(value(m, 'weft_lease_acquisitions_total{how="new"}')).toBe(1);
    expect(value(m, 'weft_etcd_reachable')).toBe(1);
    expect(value(m, 'weft_reconcile_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    // The default 24 h lease, seen a moment after it was granted.
    expect(value(m, 'weft_lease_expiry_seconds')).toBeGreaterThan(23 * 3600);
    expect(value(m, 'weft_lease_expiry_seconds')).toBeLessThanOrEqual(24 * 3600);
    expect(value(m, 'weft_watch_revision')).toBeGreaterThan(0);
    expect(value(m, 'weft_watch_last_event_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(value(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value(m, 'process_resident_memory_bytes')).toBeGreaterThan(10e6);
  });

  it('follows a host joining and leaving', async () => {
    const before = await scrape();
    const { host: h3 } = await joinHost(tb, 3);
    const joined = await scrapeUntil('h3 programmed on h1', (s) => s.get('weft_peers_programmed') === 2);
    expect(value(joined, 'weft_leases')).toBe(3);
    expect(value(joined, 'weft_peers_desired')).toBe(2);
    // h3 cost exactly one neighbour, one FDB entry and one route on h1.
    for (const kind of ['route', 'neigh', 'fdb']) expect(ops(joined, kind) - ops(before, kind), kind).toBe(1);
    expect(value(joined, 'weft_reconcile_duration_seconds_count')).toBeGreaterThan(value(before, 'weft_reconcile_duration_seconds_count'));
    expect(value(joined, 'weft_reconciles_total{trigger="event"}')).toBeGreaterThan(value(before, 'weft_reconciles_total{trigger="event"}'));
    expect(value(joined, 'weft_watch_revision')).toBeGreaterThan(value(before, 'weft_watch_revision'));
    expect(value(joined, 'weft_watch_last_event_age_seconds')).toBeLessThan(15);

    // The host goes away and an operator evicts its lease.
    const key = tb.readSubnetEnv(h3)!.subnet.toKey();
    await tb.removeHost(h3);
    expect((await tb.weft(['delete', 'lease', key])).exitCode).toBe(0);
    const left = await scrapeUntil('h3 gone from h1', (s) => s.get('weft_peers_desired') === 1 && s.get('weft_peers_programmed') === 1);
    expect(value(left, 'weft_leases')).toBe(2);
    for (const kind of ['route', 'neigh', 'fdb']) expect(ops(left, kind) - ops(joined, kind), kind).toBe(1);
    expect((await kernelState(h1)).routes).toHaveLength(1);

    // The log says each once, naming the peer.
    const log = currentRunLog(tb, h1);
    const subject = { component: 'peers', key: `${PREFIX}/subnets/${key}`, peerNode: 'h3', node: 'h1' };
    expect(findLogs(log, 'peer added', { key: subject.key })).toMatchObject([{ level: 'info', ...subject }]);
    expect(findLogs(log, 'peer removed', { key: subject.key })).toMatchObject([{ level: 'info', ...subject }]);
  });

  it('counts a drift repair (started by the kernel notification, or by the periodic resync)', async () => {
    const before = await scrape();
    const route = (await kernelState(h1)).routes[0]!.split(' via ')[0]!;
    await ipIn(h1.ns, ['route', 'del', route, 'dev', 'flannel.1']);
    const after = await scrapeUntil('the route to be repaired', (s) => s.get('weft_drift_repaired_total')! > value(before, 'weft_drift_repaired_total'));
    expect(value(after, 'weft_drift_repaired_total') - value(before, 'weft_drift_repaired_total')).toBe(1);
    expect(ops(after, 'route') - ops(before, 'route')).toBe(1);
    const repairs = (m: Map<string, number>) => value(m, 'weft_reconciles_total{trigger="drift"}') + value(m, 'weft_reconciles_total{trigger="resync"}');
    expect(repairs(after)).toBeGreaterThan(repairs(before));
    expect((await kernelState(h1)).routes).toHaveLength(1);
    expect(value(after, 'weft_peers_programmed')).toBe(1);
  });
});
