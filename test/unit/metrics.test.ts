import { createRequire } from 'node:module';
import { describe, expect, it, vi } from 'vitest';
import { AgentMetrics, EVENT_LOOP_SAMPLE_MS } from '../../src/agent/metrics.js';

const none = { ok: 0, failed: 0 };

/** The value of one sample in Prometheus text format. */
function sample(text: string, series: string): string | undefined {
  for (const line of text.split('\n')) if (line.startsWith(series + ' ')) return line.slice(series.length + 1);
  return undefined;
}

/** Each series' sample, as expected (all reported at once, so a failure shows every difference). */
function expectSamples(text: string, want: Record<string, string>): void {
  expect(Object.fromEntries(Object.keys(want).map((series) => [series, sample(text, series)]))).toEqual(want);
}

describe('agent metrics', () => {
  it('counts reconciles, kernel operations by kind and result, peers and drift', async () => {
    const m = new AgentMetrics({ processMetrics: false });
    m.reconciled({ trigger: 'event', peersDesired: 3, peersProgrammed: 3, ops: { route: { ok: 3, failed: 0 }, neigh: { ok: 3, failed: 0 }, fdb: { ok: 3, failed: 0 } }, seconds: 0.02 });
    m.reconciled({ trigger: 'resync', peersDesired: 3, peersProgrammed: 3, ops: { route: none, neigh: none, fdb: none }, seconds: 0.01 });
    m.reconciled({ trigger: 'resync', peersDesired: 3, peersProgrammed: 2, ops: { route: { ok: 1, failed: 1 }, neigh: none, fdb: none }, seconds: 0.3 });
    const text = await m.render();
    expectSamples(text, {
      'weft_kernel_operations_total{kind="route",result="ok"}': '4',
      'weft_kernel_operations_total{kind="route",result="failed"}': '1',
      'weft_kernel_operations_total{kind="neigh",result="ok"}': '3',
      'weft_kernel_operations_total{kind="fdb",result="failed"}': '0',
      'weft_reconciles_total{trigger="event"}': '1',
      'weft_reconciles_total{trigger="resync"}': '2',
      'weft_reconciles_total{trigger="retry"}': '0',
      'weft_drift_repaired_total': '1', // only the resync that applied something
      'weft_peers_desired': '3',
      'weft_peers_programmed': '2',
      'weft_reconcile_duration_seconds_count': '3',
      'weft_reconcile_duration_seconds_bucket{le="0.025"}': '2',
    });
  });

  it('shows every reconcile at each scrape, across scrapes and past a full tally of durations', async () => {
    const m = new AgentMetrics({ processMetrics: false });
    const event = (peers: number, seconds: number) =>
      m.reconciled({ trigger: 'event', peersDesired: peers, peersProgrammed: peers, ops: { route: { ok: 1, failed: 0 }, neigh: { ok: 1, failed: 0 }, fdb: none }, seconds });
    event(1, 0.001);
    let text = await m.render();
    expect(sample(text, 'weft_reconciles_total{trigger="event"}')).toBe('1');
    expect(sample(text, 'weft_peers_desired')).toBe('1');
    // Nothing since the last scrape: the same values again.
    text = await m.render();
    expect(sample(text, 'weft_reconciles_total{trigger="event"}')).toBe('1');
    expect(sample(text, 'weft_peers_programmed')).toBe('1');
    for (let i = 0; i < 600; i++) event(2 + i, i % 2 ? 0.2 : 0.002);
    text = await m.render();
    expectSamples(text, {
      'weft_reconciles_total{trigger="event"}': '601',
      'weft_kernel_operations_total{kind="neigh",result="ok"}': '601',
      'weft_kernel_operations_total{kind="fdb",result="ok"}': '0',
      'weft_peers_desired': '601',
      'weft_reconcile_duration_seconds_count': '601',
      'weft_reconcile_duration_seconds_bucket{le="0.005"}': '301',
    });
    expect(Number(sample(text, 'weft_reconcile_duration_seconds_sum'))).toBeCloseTo(0.001 + 300 * 0.2 + 300 * 0.002, 6);
  });

  it('reads leases, watch age and lease expiry from the agent at scrape time', async () => {
    let now = 1_000_000;
    const m = new AgentMetrics({ now: () => now, processMetrics: false });
    let expiresAt: number | undefined;
    let text = await m.render();
    expect(sample(text, 'weft_leases')).toMatch(/^nan$/i); // prom-client writes "Nan", which Prometheus parses
    m.observe({ leases: () => 4, watchRevision: () => 17, lastWatchActivity: () => 990_000, leaseExpiresAt: () => expiresAt });
    text = await m.render();
    expectSamples(text, {
      'weft_leases': '4',
      'weft_watch_revision': '17',
      'weft_watch_last_event_age_seconds': '10',
    });
    expect(sample(text, 'weft_lease_expiry_seconds')).toMatch(/^nan$/i); // no lease held yet
    expiresAt = now + 90_500;
    now += 500;
    expect(sample(await m.render(), 'weft_lease_expiry_seconds')).toBe('90');
    expiresAt = Infinity; // a reservation
    expect(sample(await m.render(), 'weft_lease_expiry_seconds')).toBe('+Inf');
  });

  it('counts etcd errors by operation, outages, and lease events', async () => {
    const m = new AgentMetrics({ processMetrics: false });
    m.etcdError('renew');
    m.etcdError('renew');
    m.etcdError('probe');
    m.etcdReachable(false);
    m.etcdReachable(true);
    m.leaseAcquired('new');
    m.leaseRenewed(true);
    m.leaseLost();
    const text = await m.render();
    expectSamples(text, {
      'weft_etcd_errors_total{operation="renew"}': '2',
      'weft_etcd_errors_total{operation="probe"}': '1',
      'weft_etcd_errors_total{operation="list"}': '0', // present before the first error
      'weft_etcd_outages_total': '1',
      'weft_etcd_reachable': '1',
      'weft_lease_acquisitions_total{how="new"}': '1',
      'weft_lease_renewals_total{result="ok"}': '1',
      'weft_lease_renewals_total{result="failed"}': '0',
      'weft_lease_losses_total': '1',
    });
  });

  it('follows Prometheus naming, and exports process metrics under their standard names', async () => {
    const text = await new AgentMetrics().render();
    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => ({ name: m[1]!, type: m[2]! }));
    const weft = names.filter((n) => n.name.startsWith('weft_'));
    expect(weft.length).toBeGreaterThan(15);
    for (const n of weft) {
      if (n.type === 'counter') expect(n.name).toMatch(/_total$/);
      else expect(n.name).not.toMatch(/_total$/);
    }
    const all = names.map((n) => n.name);
    expect(all).toContain('process_cpu_seconds_total');
    expect(all).toContain('process_resident_memory_bytes');
    expect(all).toContain('nodejs_eventloop_lag_seconds');
  });

  it('samples the event-loop delay once a second, not every 10 ms (a timer that kept an idle agent busy)', () => {
    const require = createRequire(import.meta.url);
    const hooks = require('node:perf_hooks') as typeof import('node:perf_hooks');
    const spy = vi.spyOn(hooks, 'monitorEventLoopDelay');
    try {
      new AgentMetrics();
      expect(spy).toHaveBeenCalledWith({ resolution: EVENT_LOOP_SAMPLE_MS });
      expect(EVENT_LOOP_SAMPLE_MS).toBeGreaterThanOrEqual(1000);
    } finally {
      spy.mockRestore();
    }
  });
});
