// The agent's lifecycle: network config -> uplink -> device -> lease -> subnet.env ->
// watch leases -> converge the kernel; renew the lease and resync the kernel periodically.
// Everything that talks to the outside (etcd, kernel, files) is injected or at the edge.
import { isUserError, StoreAuthError } from '../api/errors.js';
import { describeLeaseKey, encodeLease, type LeaseKey, type LeaseValue } from '../api/lease.js';
import { resolveNetwork, type NetworkConfig } from '../api/network.js';
import { ensureMasq } from '../dataplane/masq.js';
import type { Backend, BackendSettings } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import { isTransientStoreError } from '../store/client.js';
import { LeaseWriter, type HeldLease } from '../store/leases.js';
import { subnetRecord, type Store, type SubnetRecord } from '../store/store.js';
import { acquireLease, OutOfSubnetsError } from './acquire.js';
import { compareConfigs } from './config-change.js';
import { AgentMetrics } from './metrics.js';
import type { AgentOptions } from './flags.js';
import { selectInterface, type HostSnapshot, type Selection } from './iface.js';
import { defaultBackoff, LeaseWatch } from './lease-watch.js';
import { PeerSelector } from './peers.js';
import { publishedLease } from './publish.js';
import { formatSubnetEnv, overlayMtu, readPreviousSubnets, writeSubnetEnv } from './subnet-env.js';

/**
 * SEAM(ipv6-dataplane): what the agent needs from the IPv6 half of the dataplane (for vxlan,
 * a `flannel-v6.<VNI>` device over the uplink's IPv6 address). Its MAC is published as
 * BackendV6Data and its MTU counts toward FLANNEL_MTU. Programming the IPv6 peers belongs
 * to the same object (see reconcileLoop).
 */
export interface Ipv6Backend {
  prepare(): Promise<{ vtepMAC?: string; mtu: number }>;
}

export interface AgentDeps {
  options: AgentOptions;
  store: Store;
  logger: Logger;
  readHost: (canReach?: string, opts?: { ipv6?: boolean }) => Promise<HostSnapshot>;
  /** Counters and gauges for /metrics; a private registry by default. */
  metrics?: AgentMetrics;
  /** The IPv4 stack's backend; asked for only when the network has IPv4. */
  createBackend: (settings: BackendSettings, selection: Selection) => Backend;
  /**
   * SEAM(ipv6-dataplane): the IPv6 stack's backend, asked for only when the network has
   * IPv6. Without it the agent still leases, publishes and writes the IPv6 subnet to
   * subnet.env, but programs no IPv6 kernel state and publishes no BackendV6Data.
   */
  createIpv6Backend?: (settings: BackendSettings, selection: Selection) => Ipv6Backend;
  now?: () => number;
  random?: () => number;
}

/** The agent cannot go on (bad flags for this host, refused credentials). */
export class FatalAgentError extends Error {
  override readonly name = 'FatalAgentError';
}

type Phase = 'config' | 'acquiring' | 'out-of-subnets' | 'running';

export class Agent {
  private phase: Phase = 'config';
  private config: NetworkConfig | undefined;
  private selection: Selection | undefined;
  /** The IPv4 stack's backend; undefined in an IPv6-only network. */
  private backend: Backend | undefined;
  private backend6: Ipv6Backend | undefined;
  private leaseValue: LeaseValue | undefined;
  private held: HeldLease | undefined;
  private mtu = 0;
  private watch: LeaseWatch | undefined;
  private peers: PeerSelector | undefined;
  private writer: LeaseWriter;
  private converged = false;
  private stopped = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private wake: (() => void) | undefined;
  private leaseOps: Promise<void> = Promise.resolve();
  /** The listing the first acquisition used; it seeds the lease watch. */
  private lastListing: { records: SubnetRecord[]; revision: number } | undefined;
  private reconcile = { pending: false, resync: false, running: false, failures: 0 };
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly metrics: AgentMetrics;

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger;
    this.metrics = deps.metrics ?? new AgentMetrics();
    this.writer = new LeaseWriter(deps.store, deps.options.network, this.now);
  }

  ready(): { ok: boolean; reason: string } {
    if (this.phase === 'config') return { ok: false, reason: 'waiting for the network config' };
    if (this.phase === 'out-of-subnets') return { ok: false, reason: 'out of subnets' };
    if (this.phase === 'acquiring' || !this.held) return { ok: false, reason: 'acquiring a lease' };
    if (!this.converged) return { ok: false, reason: 'converging the dataplane' };
    return { ok: true, reason: `ok ${describeLeaseKey(this.held.subnets)}` };
  }

  /** The lease currently held (for tests and status). */
  get lease(): HeldLease | undefined {
    return this.held;
  }

  /** Runs until stop(); throws FatalAgentError when it cannot start or must not go on. */
  async run(): Promise<void> {
    await this.runUntilStopped();
    if (this.fatal) throw this.fatal;
  }

  private async runUntilStopped(): Promise<void> {
    const { options } = this.deps;
    this.config = await this.untilDone('network config', () => this.readConfig());
    if (this.stopped) return;
    const config = this.config;

    const stacks = { ipv4: config.ipv4 !== undefined, ipv6: config.ipv6 !== undefined };
    try {
      this.selection = selectInterface(options, await this.deps.readHost(options.ifaceCanReach, { ipv6: stacks.ipv6 }), stacks);
    } catch (err) {
      throw new FatalAgentError((err as Error).message);
    }
    const sel = this.selection;
    this.log.info('using interface', {
      iface: sel.link.name,
      ...(sel.uplink ? { address: sel.uplink.address.toString(), publicIP: sel.publicIP!.toString() } : {}),
      ...(sel.uplink6 ? { address6: sel.uplink6.address.toString(), publicIPv6: sel.publicIPv6!.toString() } : {}),
      how: sel.how,
      mtu: sel.link.mtu,
    });

    const settings: BackendSettings = {
      type: config.backend.type as 'vxlan' | 'host-gw',
      vni: config.backend.vni,
      port: config.backend.port,
      ...(config.backend.mtu !== undefined ? { mtu: config.backend.mtu } : {}),
      directRouting: config.backend.directRouting,
      gbp: config.backend.gbp,
    };
    const mtus: number[] = [];
    let vtepMAC: string | undefined;
    let vtepMACv6: string | undefined;
    if (config.ipv4) {
      this.backend = this.deps.createBackend({ ...settings, network: config.ipv4.network }, sel);
      const prepared = await this.backend.prepare();
      mtus.push(prepared.mtu);
      vtepMAC = prepared.vtepMAC;
      this.peers = new PeerSelector(this.log, settings.type);
    }
    if (config.ipv6) {
      // SEAM(ipv6-dataplane): the IPv6 device, when the dataplane provides one.
      this.backend6 = this.deps.createIpv6Backend?.(settings, sel);
      if (this.backend6) {
        const prepared = await this.backend6.prepare();
        mtus.push(prepared.mtu);
        vtepMACv6 = prepared.vtepMAC;
      } else {
        mtus.push(overlayMtu(config.backend, sel.link.mtu, 6));
        this.log.warn('no IPv6 dataplane in this build: the IPv6 subnet is leased and written to subnet.env, but IPv6 peers are not programmed');
      }
    }
    this.mtu = Math.min(...mtus);
    this.leaseValue = publishedLease({ config, selection: sel, nodeName: options.nodeName, vtepMAC, vtepMACv6 });

    await this.acquire(readPreviousSubnets(options.subnetFile));
    if (this.stopped) return;

    this.watch = new LeaseWatch(this.deps.store, options.network, this.log, {
      onChange: () => this.onLeasesChanged(),
      onHealth: (reachable) => this.metrics.etcdReachable(reachable),
    });
    let seed = this.seedListing();
    await this.untilDone('lease watch', async () => {
      await this.watch!.start(seed);
      seed = undefined; // a retry lists afresh
      return true;
    });
    if (this.stopped) return;
    this.phase = 'running';
    this.metrics.etcdReachable(true);
    this.every(options.resyncIntervalMs, () => {
      this.scheduleReconcile(true);
      void this.reloadConfig();
      void this.applyMasq();
    });
    await new Promise<void>((resolve) => (this.wake = resolve));
  }

  /** Stops the agent with an error run() throws (logged there; the process exits non-zero). */
  private failFatally(err: FatalAgentError): void {
    if (this.fatal) return;
    this.fatal = err;
    void this.stop();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.watch?.stop();
    this.wake?.();
  }

  /**
   * The acquisition's listing, with our own key as we just wrote it (the listing predates
   * the write; the watch, started from the listing's revision, replays it and what followed).
   */
  private seedListing(): { records: SubnetRecord[]; revision: number } | undefined {
    const listing = this.lastListing;
    const held = this.held;
    this.lastListing = undefined;
    if (!listing || !held) return undefined;
    const prefix = this.deps.store.layout.subnetsPrefix(this.deps.options.network);
    const own = subnetRecord(this.deps.options.network, prefix, {
      key: held.key,
      value: held.value,
      modRevision: held.modRevision,
      createRevision: held.modRevision,
      version: 1,
      leaseId: held.leaseId,
    });
    return { records: [...listing.records.filter((r) => r.kv.key !== held.key), own], revision: listing.revision };
  }

  // ---- network config ----

  private async readConfig(): Promise<NetworkConfig | undefined> {
    const { network } = this.deps.options;
    const record = await this.deps.store.readNetwork(network);
    const key = this.deps.store.layout.configKey(network);
    if (!record) return this.once('config-missing', `no network config at ${key}; waiting (apply a Network named ${network})`);
    if (!record.spec.ok) return this.once(`config-bad-${record.kv.modRevision}`, `network config at ${key} is unusable: ${record.spec.error}`);
    const { config, problems } = resolveNetwork(network, record.spec.value);
    if (!config) {
      return this.once(`config-bad-${record.kv.modRevision}`, `network config at ${key} is invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
    }
    return config;
  }

  /**
   * Re-reads the Network on every resync tick (level-triggered, one read): a new lease TTL or
   * subnet range applies live; anything that shapes the kernel or the subnet asks for a restart.
   */
  private async reloadConfig(): Promise<void> {
    const current = this.config;
    if (!current || this.stopped) return;
    let wanted: NetworkConfig | undefined;
    try {
      wanted = await this.readConfig();
    } catch {
      return; // etcd away: the lease watch reports outages; try again next tick
    }
    if (!wanted || this.stopped) return;
    const change = compareConfigs(current, wanted, this.held?.subnets);
    if (change.needsRestart.length > 0) {
      const shape = [wanted.ipv4, wanted.ipv6].map((s) => (s ? `${s.network}/${s.subnetLen}` : '-')).join(',');
      const tag = `restart:${change.needsRestart.join(',')}:${JSON.stringify(wanted.backend)}:${shape}`;
      this.once(tag, `network config changed (${change.needsRestart.join(', ')}); restart the agent to apply it, until then it keeps the config it started with`);
    }
    if (change.applied.length === 0) return;
    this.config = change.next;
    const { ipv4, ipv6 } = change.next;
    this.log.info('network config updated', {
      fields: change.applied.join(','),
      leaseTTLs: change.next.leaseTTLms / 1000,
      ...(ipv4 ? { subnetMin: ipv4.subnetMin.toString(), subnetMax: ipv4.subnetMax.toString() } : {}),
      ...(ipv6 ? { ipv6SubnetMin: ipv6.subnetMin.toString(), ipv6SubnetMax: ipv6.subnetMax.toString() } : {}),
    });
    if (change.subnetOutOfRange && this.held) {
      this.log.warn('our subnet is outside the network range now; giving it up for a new one', { subnet: describeLeaseKey(this.held.subnets) });
      void this.acquire(undefined);
    } else if (change.applied.includes('leaseTTL')) {
      // The etcd lease in place keeps its TTL; renew now so the new one takes effect.
      this.scheduleRenewal(0);
    }
  }

  private readonly said = new Set<string>();
  private once(tag: string, message: string): undefined {
    if (!this.said.has(tag)) {
      this.said.add(tag);
      this.log.warn(message);
    }
    return undefined;
  }

  // ---- lease ----

  private serialize(op: () => Promise<void>): Promise<void> {
    const next = this.leaseOps.then(op, op);
    this.leaseOps = next.catch(() => {});
    return next;
  }

  private acquire(previous: LeaseKey | undefined): Promise<void> {
    return this.serialize(async () => {
      const before = this.held;
      this.phase = this.phase === 'running' ? 'running' : 'acquiring';
      const result = await this.untilDone('lease', async () => {
        try {
          return await acquireLease({
            store: this.deps.store,
            writer: this.writer,
            config: this.config!,
            identity: { nodeName: this.deps.options.nodeName, publicIP: this.selection!.publicIP, publicIPv6: this.selection!.publicIPv6 },
            leaseValue: this.leaseValue!,
            previous,
            logger: this.log,
            ...(this.deps.random ? { random: this.deps.random } : {}),
          });
        } catch (err) {
          if (err instanceof OutOfSubnetsError) {
            if (this.phase !== 'running') this.phase = 'out-of-subnets';
            this.once('full', `${err.message}; retrying until a subnet frees up`);
            return undefined;
          }
          throw err;
        }
      });
      if (!result) return;
      this.said.delete('full');
      this.held = result.held;
      this.lastListing = result.listing;
      this.metrics.leaseAcquired(result.how, result.held.expiresAt);
      this.log.info('lease acquired', {
        ...subnetFields(result.held.subnets),
        how: result.how,
        reservation: result.held.reserved,
        attempts: result.attempts,
        ...(before && before.key !== result.held.key ? { previous: describeLeaseKey(before.subnets) } : {}),
      });
      this.writeEnv();
      void this.applyMasq();
      this.scheduleRenewal();
      if (this.phase !== 'running' && this.watch) this.phase = 'running';
      this.scheduleReconcile(false);
    });
  }

  /** --ip-masq: (re)installs the masquerade rules for the network and our subnet (IPv4). */
  private async applyMasq(): Promise<void> {
    if (!this.deps.options.ipMasq || !this.held || !this.config || this.stopped) return;
    if (this.config.ipv6) this.once('masq-ipv6', '--ip-masq covers IPv4 only: IPv6 container traffic is not masqueraded');
    const network = this.config.ipv4?.network;
    const subnet = this.held.subnets.ipv4;
    if (!network || !subnet) return;
    try {
      await ensureMasq(network, subnet);
      this.said.delete('masq-failed');
    } catch (err) {
      this.once('masq-failed', `cannot install the --ip-masq rules (retrying at each resync): ${(err as Error).message}`);
    }
  }

  private writeEnv(): void {
    const config = this.config!;
    const subnets = this.held!.subnets;
    const content = formatSubnetEnv({
      ...(config.ipv4 && subnets.ipv4 ? { network: config.ipv4.network, subnet: subnets.ipv4 } : {}),
      ...(config.ipv6 && subnets.ipv6 ? { ipv6Network: config.ipv6.network, ipv6Subnet: subnets.ipv6 } : {}),
      mtu: this.mtu,
      ipMasq: this.deps.options.ipMasq,
    });
    if (writeSubnetEnv(this.deps.options.subnetFile, content)) {
      this.log.info('wrote subnet file', { path: this.deps.options.subnetFile });
    }
  }

  private renewalTimer: NodeJS.Timeout | undefined;
  private scheduleRenewal(delayOverride?: number): void {
    if (this.renewalTimer) {
      clearTimeout(this.renewalTimer);
      this.timers.delete(this.renewalTimer);
      this.renewalTimer = undefined;
    }
    const held = this.held;
    if (!held || held.reserved || this.stopped) return;
    const ttl = this.config!.leaseTTLms;
    const margin = Math.min(this.deps.options.renewMarginMs, ttl / 2);
    const delay = delayOverride ?? Math.max(0, held.expiresAt - margin - this.now());
    this.renewalTimer = this.after(delay, () => void this.renew());
  }

  private renewFailures = 0;
  private renew(): Promise<void> {
    return this.serialize(async () => {
      const held = this.held;
      if (!held || held.reserved || this.stopped) return;
      try {
        const out = await this.writer.renew(held.subnets, held.modRevision, this.leaseValue!, this.config!.leaseTTLms);
        if (this.renewFailures > 0) this.log.info('lease renewal succeeded after etcd came back', { attempts: this.renewFailures + 1 });
        this.renewFailures = 0;
        this.metrics.leaseRenewed(out.ok, out.ok ? out.held.expiresAt : undefined);
        if (out.ok) {
          this.held = out.held;
          this.scheduleRenewal();
        } else {
          this.log.warn('lease was changed or removed by someone else; re-acquiring', { key: held.key, reason: out.reason });
          void this.acquire(held.subnets);
        }
      } catch (err) {
        if (!isTransientStoreError(err)) throw err;
        this.metrics.leaseRenewed(false);
        if (this.renewFailures++ === 0) this.log.warn('lease renewal failed; retrying with backoff', { err: (err as Error).message });
        this.scheduleRenewal(defaultBackoff(this.renewFailures));
      }
    });
  }

  /** Checks, on every change of the lease set, that our key is still ours. */
  private checkOwnLease(): void {
    const held = this.held;
    if (!held || !this.watch || this.stopped) return;
    const record = this.watch.records.get(held.key);
    // Our own write may be seen before the call that made it returns (a republished MAC).
    if (record && record.kv.value !== held.value && this.leaseValue && record.kv.value === encodeLease(this.leaseValue)) {
      held.value = record.kv.value;
    }
    if (record && record.kv.value === held.value) {
      if (record.kv.modRevision > held.modRevision) held.modRevision = record.kv.modRevision;
      if (record.reserved !== held.reserved) this.followReservationChange(record.reserved);
      return;
    }
    if (this.reacquiring) return;
    const taker = record?.lease.ok ? record.lease.value : undefined;
    if (taker?.nodeName === this.deps.options.nodeName) {
      // Another agent runs with our node name (a cloned VM, say) and took our lease over.
      // Taking it back would make the two hosts trade one subnet forever: stop instead.
      this.failFatally(
        new FatalAgentError(
          `another agent with node name "${taker.nodeName}" (public IP ${taker.publicIP}) took over our lease ${held.key}; node names must be unique, stopping`,
        ),
      );
      return;
    }
    this.reacquiring = true;
    this.log.warn(record ? 'our lease was overwritten; re-acquiring' : 'our lease was deleted; re-acquiring', { key: held.key });
    void this.acquire(held.subnets).finally(() => (this.reacquiring = false));
  }
  private reacquiring = false;
  private fatal: FatalAgentError | undefined;

  /**
   * An operator turned our lease into a reservation (`weft apply` of a Subnet for this node
   * detaches the etcd lease and keeps the value): stop renewing, or the next renewal would
   * attach a TTL again. The reverse (a TTL attached to our reservation) is renewed at once so
   * that the lease is one we keep alive.
   */
  private followReservationChange(reserved: boolean): void {
    const held = this.held!;
    held.reserved = reserved;
    if (reserved) {
      held.leaseId = '0';
      held.expiresAt = Infinity;
      this.log.info('our lease is now a reservation; renewals stop', { key: held.key });
      this.scheduleRenewal();
    } else {
      this.log.warn('our reservation now has an etcd lease attached; renewing it as a lease', { key: held.key });
      this.scheduleRenewal(0);
    }
  }

  private async republish(vtepMAC: string): Promise<void> {
    await this.serialize(async () => {
      const held = this.held;
      if (!held || !this.leaseValue?.backendData) return;
      this.leaseValue = { ...this.leaseValue, backendData: { ...this.leaseValue.backendData, VtepMAC: vtepMAC } };
      const out = held.reserved
        ? await this.writer.adopt(held.subnets, held.modRevision, held.value, this.leaseValue)
        : await this.writer.renew(held.subnets, held.modRevision, this.leaseValue, this.config!.leaseTTLms);
      if (out.ok) {
        this.held = out.held;
        this.scheduleRenewal();
        this.log.info('published new VTEP MAC', { vtepMAC });
      } else {
        void this.acquire(held.subnets);
      }
    });
  }

  // ---- dataplane ----

  private onLeasesChanged(): void {
    this.checkOwnLease();
    this.scheduleReconcile(false);
  }

  /** Coalesces triggers: whatever arrives while a reconcile runs is folded into the next. */
  private scheduleReconcile(resync: boolean): void {
    const r = this.reconcile;
    r.pending = true;
    r.resync ||= resync;
    if (r.running || this.stopped || !this.held || !this.watch) return;
    r.running = true;
    setImmediate(() => void this.reconcileLoop());
  }

  private async reconcileLoop(): Promise<void> {
    const r = this.reconcile;
    try {
      while (r.pending && !this.stopped && this.held && this.watch) {
        const resync = r.resync;
        r.pending = false;
        r.resync = false;
        const ownSubnet = this.held.subnets.ipv4;
        if (!this.backend || !this.peers || !ownSubnet) {
          // IPv6-only: no IPv4 dataplane to converge.
          // SEAM(ipv6-dataplane): the IPv6 backend's reconcile of the IPv6 peers goes here.
          this.markConverged(0);
          continue;
        }
        const peers = this.peers.select(this.watch.records.values(), this.held.key);
        try {
          const started = performance.now();
          const report = await this.backend.reconcile(ownSubnet, peers, { resync });
          this.metrics.reconciled({
            resync,
            peers: peers.length,
            operations: report.operations,
            failures: report.failures,
            seconds: (performance.now() - started) / 1000,
          });
          if (resync) this.log.debug('resync done', { peers: peers.length, operations: report.operations });
          if (report.operations > 0 || report.failures > 0) {
            const timing = report.ms !== undefined ? { ms: Math.round(report.ms * 10) / 10, kernelMs: Math.round((report.kernelMs ?? 0) * 10) / 10 } : {};
            this.log.info('dataplane converged', { peers: peers.length, operations: report.operations, failures: report.failures, resync, ...timing });
          }
          if (report.failures > 0) {
            this.after(Math.min(30_000, 500 * 2 ** Math.min(r.failures++, 6)), () => this.scheduleReconcile(true));
          } else {
            r.failures = 0;
            this.markConverged(peers.length);
          }
          const mac = this.leaseValue?.backendData?.VtepMAC;
          if (report.vtepMAC && mac && report.vtepMAC !== mac) void this.republish(report.vtepMAC);
        } catch (err) {
          this.log.error('dataplane reconcile failed; will retry', { err: (err as Error).message });
          this.after(Math.min(30_000, 500 * 2 ** Math.min(r.failures++, 6)), () => this.scheduleReconcile(true));
        }
      }
    } finally {
      r.running = false;
    }
  }

  private markConverged(peers: number): void {
    if (this.converged || !this.held) return;
    this.converged = true;
    this.metrics.setReady(true);
    this.log.info('ready', { ...subnetFields(this.held.subnets), peers });
  }

  // ---- plumbing ----

  /** Retries op while etcd is unavailable (logging the outage once) or op returns undefined. */
  private async untilDone<T>(what: string, op: () => Promise<T | undefined>): Promise<T> {
    let attempt = 0;
    let outage = false;
    for (;;) {
      if (this.stopped) return undefined as T;
      try {
        const v = await op();
        if (outage) this.log.info(`etcd reachable again (${what})`, { attempts: attempt });
        if (v !== undefined) return v;
      } catch (err) {
        if (err instanceof StoreAuthError || isUserError(err)) throw new FatalAgentError((err as Error).message);
        if (!isTransientStoreError(err) && !(err instanceof Error && err.name === 'ContentionError')) throw err;
        if (!outage) this.log.warn(`etcd unavailable (${what}); retrying with backoff`, { err: (err as Error).message });
        outage = true;
      }
      attempt++;
      await new Promise<void>((resolve) => this.after(defaultBackoff(attempt), resolve));
    }
  }

  private after(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  private every(ms: number, fn: () => void): void {
    const tick = () => {
      fn();
      this.after(ms, tick);
    };
    this.after(ms, tick);
  }
}

/** Log fields for a key's subnets: `subnet` (IPv4) as always, `ipv6Subnet` beside it. */
function subnetFields(k: LeaseKey): Record<string, string> {
  return {
    ...(k.ipv4 ? { subnet: k.ipv4.toString() } : {}),
    ...(k.ipv6 ? { ipv6Subnet: k.ipv6.toString() } : {}),
  };
}
