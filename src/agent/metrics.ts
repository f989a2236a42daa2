// The agent's Prometheus metrics, served on /metrics next to /healthz and /readyz. The rest
// of the agent calls these methods and never sees prom-client, whose registry is our own
// (not the global one) so that several agents in one process (tests) do not collide.
//
// Counters count events as they happen; gauges that describe "now" (leases known, seconds
// to lease expiry, age of the last watch event) are read from the agent at scrape time.
// Process and Node.js runtime metrics carry their standard names (process_*, nodejs_*), as
// every Prometheus client library exports them, so that existing dashboards work.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KernelOpCounts } from '../dataplane/types.js';
import type { AcquisitionKind } from './acquire.js';

/** How often the event-loop delay histogram (nodejs_eventloop_lag_*) samples, in ms. */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** What the agent knows right now, read at each scrape. Undefined = not known yet. */
export interface LiveState {
  /** Subnet keys (leases and reservations) the lease watch holds. */
  leases(): number | undefined;
  /** The etcd revision the agent's view of the leases reflects. */
  watchRevision(): number | undefined;
  /** Wall-clock ms of the last watch event or listing. */
  lastWatchActivity(): number | undefined;
  /** Wall-clock ms when the held lease expires (Infinity for a reservation). */
  leaseExpiresAt(): number | undefined;
  /** Peer leases left out by the peer screen or for a route weft does not own, by family and reason. */
  screened?(): { family: 4 | 6; reason: string; count: number }[];
}

/**
 * Why a reconcile ran: a lease change, the periodic resync, a retry after a failure, or the
 * kernel's notification that something changed weft's entries or device (drift).
 */
export type ReconcileTrigger = 'event' | 'resync' | 'retry' | 'drift';

/** Which etcd work failed (one count per failed attempt). */
export const ETCD_OPERATIONS = ['config', 'acquire', 'renew', 'list', 'watch', 'probe'] as const;
export type EtcdOperation = (typeof ETCD_OPERATIONS)[number];


export const KERNEL_OP_KINDS = ['route', 'neigh', 'fdb'] as const;

export class AgentMetrics {
  readonly registry = new Registry();
  private live: LiveState | undefined;
  private readonly now: () => number;

  private readonly ready = new Gauge({ name: 'weft_agent_ready', help: '1 once the lease is held, subnet.env written and the kernel converged', registers: [this.registry] });
  private readonly etcdUp = new Gauge({ name: 'weft_etcd_reachable', help: '1 while the lease watch is connected to etcd', registers: [this.registry] });
  private readonly outages = new Counter({ name: 'weft_etcd_outages_total', help: 'Times the agent lost contact with etcd', registers: [this.registry] });
  private readonly etcdErrors = new Counter({
    name: 'weft_etcd_errors_total',
    help: 'Failed etcd attempts, by operation (config, acquire, renew, list, watch, probe); each is retried',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  private readonly acquisitions = new Counter({
    name: 'weft_lease_acquisitions_total',
    help: 'Leases acquired, by how (reservation, existing, previous, new)',
    labelNames: ['how'] as const,
    registers: [this.registry],
  });
  private readonly renewals = new Counter({ name: 'weft_lease_renewals_total', help: 'Lease renewals, by result (ok, failed)', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly losses = new Counter({ name: 'weft_lease_losses_total', help: 'Times the held lease was deleted, expired or overwritten by someone else (then re-acquired)', registers: [this.registry] });
  // The reconcile figures: one reconcile per lease event, so reconciled() only adds to the
  // plain tallies below and each scrape (or a full tally) hands them to prom-client. Its
  // labelled inc and observe (label checks, a hash of the labels, a Map lookup each) ran cold
  // once per event, about 0.02 ms of the agent's CPU (docs/performance.md, "CPU per lease
  // event, third pass"). The series and their values at every scrape are the same.
  private readonly flushFirst = (): void => this.flush();
  private readonly reconciles = new Counter({ name: 'weft_reconciles_total', help: 'Dataplane reconciles, by trigger (event, resync, retry, drift)', labelNames: ['trigger'] as const, registers: [this.registry], collect: this.flushFirst });
  private readonly drift = new Counter({ name: 'weft_drift_repaired_total', help: 'Reconciles (periodic resync, or a kernel notification of drift) that found the kernel off the desired state and applied operations', registers: [this.registry], collect: this.flushFirst });
  private readonly operations = new Counter({
    name: 'weft_kernel_operations_total',
    help: 'Kernel operations (route, neigh, fdb), by result: ok = applied, failed = refused (retried)',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
    collect: this.flushFirst,
  });
  private readonly peersDesired = new Gauge({ name: 'weft_peers_desired', help: 'Peer leases the dataplane should reach (valid, routable, not our own) at the last reconcile', registers: [this.registry], collect: this.flushFirst });
  private readonly peersProgrammed = new Gauge({ name: 'weft_peers_programmed', help: 'Peers whose route is in the kernel after the last reconcile', registers: [this.registry], collect: this.flushFirst });
  private readonly duration = new Histogram({
    name: 'weft_reconcile_duration_seconds',
    help: 'Time to converge the kernel once',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
    collect: this.flushFirst,
  });
  /** Reconciles not yet handed to prom-client; flushed at a scrape or when `seconds` is full. */
  private readonly tally = {
    reconciles: { event: 0, resync: 0, retry: 0, drift: 0 } satisfies Record<ReconcileTrigger, number>,
    operations: { route: { ok: 0, failed: 0 }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } } satisfies KernelOpCounts,
    drift: 0,
    /** The last reconcile's peer counts; NaN = none since the last flush. */
    peersDesired: Number.NaN,
    peersProgrammed: Number.NaN,
    seconds: [] as number[],
  };

  constructor(opts: { now?: () => number; processMetrics?: boolean } = {}) {
    this.now = opts.now ?? Date.now;
    const self = this;
    // Gauges read from the running agent at scrape time: NaN while it has nothing to report.
    const registry = this.registry;
    const sampled = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [registry],
        collect() {
          this.set(read() ?? Number.NaN);
        },
      });
    sampled('weft_leases', 'Subnet keys (leases and reservations) in the network, as the lease watch sees them', () => self.live?.leases());
    sampled('weft_watch_revision', 'The etcd revision the agent has seen the leases at (compare agents to see one lagging)', () => self.live?.watchRevision());
    sampled(
      'weft_watch_last_event_age_seconds',
      'Seconds since the lease watch last delivered an event or a listing (grows in a quiet network; see weft_etcd_reachable)',
      () => {
        const at = self.live?.lastWatchActivity();
        return at === undefined ? undefined : Math.max(0, (self.now() - at) / 1000);
      },
    );
    sampled('weft_lease_expiry_seconds', 'Seconds until the held lease expires unless renewed (+Inf for a reservation, NaN while none is held)', () => {
      const at = self.live?.leaseExpiresAt();
      return at === undefined ? undefined : at === Infinity ? Infinity : (at - self.now()) / 1000;
    });
    new Gauge({
      name: 'weft_peers_screened',
      help: 'Peer leases left out for safety (see the "ignoring unsafe lease" and "not routing to peer" log lines), by family and reason',
      labelNames: ['family', 'reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of self.live?.screened?.() ?? []) this.inc({ family: String(s.family), reason: s.reason }, s.count);
      },
    });
    for (const kind of KERNEL_OP_KINDS) for (const result of ['ok', 'failed']) this.operations.inc({ kind, result }, 0);
    for (const result of ['ok', 'failed']) this.renewals.inc({ result }, 0);
    for (const trigger of ['event', 'resync', 'retry', 'drift']) this.reconciles.inc({ trigger }, 0);
    for (const operation of ETCD_OPERATIONS) this.etcdErrors.inc({ operation }, 0);
    // The event-loop delay histogram samples once a second, not prom-client's default every
    // 10 ms: a timer 100 times a second was most of an idle agent's CPU (about 300 ms a
    // minute, docs/performance.md). A stall of the loop still shows in full in the lag
    // figures; only their sampling is coarser.
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Where the scrape-time gauges read from (the running agent). */
  observe(live: LiveState): void {
    this.live = live;
  }

  setReady(ready: boolean): void {
    this.ready.set(ready ? 1 : 0);
  }

  etcdReachable(reachable: boolean): void {
    if (!reachable) this.outages.inc();
    this.etcdUp.set(reachable ? 1 : 0);
  }

  etcdError(operation: EtcdOperation): void {
    this.etcdErrors.inc({ operation });
  }

  leaseAcquired(how: AcquisitionKind): void {
    this.acquisitions.inc({ how });
  }

  leaseRenewed(ok: boolean): void {
    this.renewals.inc({ result: ok ? 'ok' : 'failed' });
  }

  leaseLost(): void {
    this.losses.inc();
  }

  reconciled(r: { trigger: ReconcileTrigger; peersDesired: number; peersProgrammed: number; ops: KernelOpCounts; seconds: number }): void {
    const t = this.tally;
    t.reconciles[r.trigger]++;
    t.peersDesired = r.peersDesired;
    t.peersProgrammed = r.peersProgrammed;
    let applied = 0;
    for (const kind of KERNEL_OP_KINDS) {
      const c = r.ops[kind];
      t.operations[kind].ok += c.ok;
      t.operations[kind].failed += c.failed;
      applied += c.ok;
    }
    if ((r.trigger === 'resync' || r.trigger === 'drift') && applied > 0) t.drift++;
    t.seconds.push(r.seconds);
    if (t.seconds.length >= 256) this.flush();
  }

  /** Hands the tallies to prom-client (before any of their series is read). */
  private flush(): void {
    const t = this.tally;
    for (const trigger of ['event', 'resync', 'retry', 'drift'] as const) {
      if (t.reconciles[trigger] > 0) this.reconciles.inc({ trigger }, t.reconciles[trigger]);
      t.reconciles[trigger] = 0;
    }
    for (const kind of KERNEL_OP_KINDS) {
      const c = t.operations[kind];
      if (c.ok > 0) this.operations.inc({ kind, result: 'ok' }, c.ok);
      if (c.failed > 0) this.operations.inc({ kind, result: 'failed' }, c.failed);
      c.ok = c.failed = 0;
    }
    if (t.drift > 0) this.drift.inc(t.drift);
    t.drift = 0;
    if (!Number.isNaN(t.peersDesired)) {
      this.peersDesired.set(t.peersDesired);
      this.peersProgrammed.set(t.peersProgrammed);
      t.peersDesired = t.peersProgrammed = Number.NaN;
    }
    for (const s of t.seconds) this.duration.observe(s);
    t.seconds.length = 0;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
