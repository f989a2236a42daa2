// The agent's Prometheus metrics, served on /metrics next to /healthz and /readyz. The rest
// of the agent calls these methods and never sees prom-client, whose registry is our own
// (not the global one) so that several agents in one process (tests) do not collide.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly ready = new Gauge({ name: 'weft_agent_ready', help: '1 once the lease is held, subnet.env written and the kernel converged', registers: [this.registry] });
  private readonly etcdUp = new Gauge({ name: 'weft_etcd_reachable', help: '1 while the lease watch is connected to etcd', registers: [this.registry] });
  private readonly outages = new Counter({ name: 'weft_etcd_outages_total', help: 'Times the agent lost contact with etcd', registers: [this.registry] });
  private readonly peers = new Gauge({ name: 'weft_peers', help: 'Peer leases programmed in the kernel at the last reconcile', registers: [this.registry] });
  private readonly acquisitions = new Counter({ name: 'weft_lease_acquisitions_total', help: 'Leases acquired, by how', labelNames: ['how'] as const, registers: [this.registry] });
  private readonly renewals = new Counter({ name: 'weft_lease_renewals_total', help: 'Lease renewals, by result', labelNames: ['result'] as const, registers: [this.registry] });
  private readonly expiry = new Gauge({ name: 'weft_lease_expiry_timestamp_seconds', help: 'When the held lease expires (0 for a reservation)', registers: [this.registry] });
  private readonly reconciles = new Counter({ name: 'weft_reconciles_total', help: 'Dataplane reconciles, by trigger', labelNames: ['trigger'] as const, registers: [this.registry] });
  private readonly operations = new Counter({ name: 'weft_kernel_operations_total', help: 'Route, neighbour and FDB operations applied', registers: [this.registry] });
  private readonly failures = new Counter({ name: 'weft_kernel_operation_failures_total', help: 'Kernel operations refused (retried at the next resync)', registers: [this.registry] });
  private readonly duration = new Histogram({
    name: 'weft_reconcile_duration_seconds',
    help: 'Time to converge the kernel once',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  setReady(ready: boolean): void {
    this.ready.set(ready ? 1 : 0);
  }

  etcdReachable(reachable: boolean): void {
    if (!reachable) this.outages.inc();
    this.etcdUp.set(reachable ? 1 : 0);
  }

  leaseAcquired(how: string, expiresAt: number): void {
    this.acquisitions.inc({ how });
    this.expiry.set(Number.isFinite(expiresAt) ? expiresAt / 1000 : 0);
  }

  leaseRenewed(ok: boolean, expiresAt?: number): void {
    this.renewals.inc({ result: ok ? 'ok' : 'failed' });
    if (ok && expiresAt !== undefined) this.expiry.set(expiresAt / 1000);
  }

  reconciled(r: { resync: boolean; peers: number; operations: number; failures: number; seconds: number }): void {
    this.reconciles.inc({ trigger: r.resync ? 'resync' : 'event' });
    this.peers.set(r.peers);
    this.operations.inc(r.operations);
    this.failures.inc(r.failures);
    this.duration.observe(r.seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
