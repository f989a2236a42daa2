// The agent's lifecycle: network config -> uplink -> device -> lease -> subnet.env ->
// watch leases -> converge the kernel; renew the lease and resync the kernel periodically.
// Everything that talks to the outside (etcd, kernel, files) is injected or at the edge.
import type { IpNet } from '../alloc/cidr.js';
import { isUserError } from '../api/errors.js';
import { StoreAuthError } from '../store/errors.js';
import { describeLeaseKey, encodeLease, type LeaseKey, type LeaseValue } from '../api/lease.js';
import { resolveNetwork, type NetworkConfig } from '../api/network.js';
import { networkSafetyProblems } from '../api/network-safety.js';
import { describeMasqChange, masqChainFor, MasqKeeper } from '../dataplane/masq.js';
import type { Backend, BackendSettings, KernelOpCounts, Peer, ReconcileReport } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import { isTransientStoreError } from '../store/client.js';
import { LeaseWriter, type HeldLease } from '../store/leases.js';
import { subnetRecord, type Store, type SubnetRecord } from '../store/store.js';
import { acquireLease, OutOfSubnetsError } from './acquire.js';
import { compareConfigs } from './config-change.js';
import { AgentMetrics, type EtcdOperation, type ReconcileTrigger } from './metrics.js';
import type { AgentOptions } from './flags.js';
import { selectInterface, type HostSnapshot, type Selection } from './iface.js';
import { defaultBackoff, LeaseWatch } from './lease-watch.js';
import { peerChangeLines, PeerSetTracker } from './peer-changes.js';
import { peerScreens, uplinkOverlaps } from './peer-screens.js';
import { PeerSelector } from './peers.js';
import { publishedLease } from './publish.js';
import { agentStatusPublisher, type StatusPublisher } from './status.js';
import { formatSubnetEnv, readPreviousSubnets, writeSubnetEnv } from './subnet-env.js';

export interface AgentDeps {
  options: AgentOptions;
  store: Store;
  logger: Logger;
  readHost: (canReach?: string, opts?: { ipv6?: boolean }) => Promise<HostSnapshot>;
  /** Counters and gauges for /metrics; a private registry by default. */
  metrics?: AgentMetrics;
  /** A backend for one address family (`settings.family`); asked for once per stack the network has. */
  createBackend: (settings: BackendSettings, selection: Selection) => Backend;
  now?: () => number;
  random?: () => number;
}

/** The agent cannot go on (bad flags for this host, refused credentials). */
export class FatalAgentError extends Error {
  override readonly name = 'FatalAgentError';
}

type Phase = 'config' | 'acquiring' | 'out-of-subnets' | 'running';

/**
 * One address family's share of the dataplane. A dual-stack network has two: the IPv4 one
 * (device flannel.<VNI>, the lease's IPv4 half, PublicIP, BackendData) and the IPv6 one
 * (flannel-v6.<VNI>, the IPv6 half, PublicIPv6, BackendV6Data), converged one after the other
 * from the same lease set.
 */
interface Stack {
  family: 4 | 6;
  backend: Backend;
  peers: PeerSelector;
  /** The MAC of this stack's vxlan device, as published in the lease. */
  vtepMAC: string | undefined;
  /** Peers whose route a route weft did not create holds, at the last reconcile. */
  routeConflicts?: number;
}

export class Agent {
  private phase: Phase = 'config';
  private config: NetworkConfig | undefined;
  private selection: Selection | undefined;
  private stacks: Stack[] = [];
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
  private reconcile = { pending: false, resync: false, retry: false, running: false, failures: 0 };
  private readonly peerSet = new PeerSetTracker();
  private readonly now: () => number;
  private readonly log: Logger;
  /** Lease lifecycle lines (acquired, renewed, lost), each with the lease's key. */
  private readonly leaseLog: Logger;
  /** Peers joining, leaving, or left out for an unusable lease. */
  private readonly peerLog: Logger;
  private readonly metrics: AgentMetrics;
  private readonly masq: MasqKeeper;
  /** The node status record at <prefix>/_weft/nodes/<network>/<node>. */
  private readonly status: StatusPublisher;

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ component: 'agent' });
    this.leaseLog = deps.logger.child({ component: 'lease' });
    this.peerLog = deps.logger.child({ component: 'peers' });
    this.metrics = deps.metrics ?? new AgentMetrics({ processMetrics: false });
    this.metrics.observe({
      leases: () => this.watch?.records.size,
      watchRevision: () => (this.watch && this.watch.revision > 0 ? this.watch.revision : undefined),
      lastWatchActivity: () => this.watch?.lastActivityAt,
      leaseExpiresAt: () => this.held?.expiresAt,
      screened: () =>
        this.stacks.flatMap((st) => [
          ...[...st.peers.screenedCounts()].map(([reason, count]) => ({ family: st.family, reason: reason as string, count })),
          ...(st.routeConflicts ? [{ family: st.family, reason: 'foreign-route', count: st.routeConflicts }] : []),
        ]),
    });
    this.writer = new LeaseWriter(deps.store, deps.options.network, this.now);
    this.masq = new MasqKeeper(masqChainFor(deps.options.network));
    this.status = agentStatusPublisher(deps.store, deps.options, this.log, () => ({
      ready: this.ready(),
      held: this.held,
      publicIP: this.selection?.publicIP?.toString(),
      publicIPv6: this.selection?.publicIPv6?.toString(),
    }), this.now);
  }

  ready(): { ok: boolean; reason: string } {
    if (this.phase === 'config') {
      return { ok: false, reason: this.configProblem ? `waiting for a usable network config: ${this.configProblem}` : 'waiting for the network config' };
    }
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
    this.status.start();
    this.config = await this.untilDone('network config', 'config', () => this.readConfig());
    if (this.stopped) return;
    const config = this.config;

    const families = { ipv4: config.ipv4 !== undefined, ipv6: config.ipv6 !== undefined };
    const host = await this.deps.readHost(options.ifaceCanReach, { ipv6: families.ipv6 });
    try {
      this.selection = selectInterface(options, host, families);
    } catch (err) {
      throw new FatalAgentError((err as Error).message);
    }
    const sel = this.selection;
    const screens = peerScreens(config, sel, host);
    for (const p of uplinkOverlaps(config, sel)) {
      this.log.warn('the network overlaps the uplink\'s network; peers in that part of it are not routed', { key: this.deps.store.layout.configKey(options.network), field: p.field, reason: p.message });
    }
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
      owner: `weft:${options.network}`,
    };
    const mtus: number[] = [];
    for (const [family, stack] of [[4, config.ipv4], [6, config.ipv6]] as const) {
      if (!stack) continue;
      const backend = this.deps.createBackend({ ...settings, family, network: stack.network }, sel);
      const prepared = await backend.prepare();
      mtus.push(prepared.mtu);
      // Unusable leases are reported by the first stack only: one line per lease, not per family.
      const peers = new PeerSelector(this.peerLog, settings.type, family, this.stacks.length === 0, screens[family]);
      this.stacks.push({ family, backend, peers, vtepMAC: prepared.vtepMAC });
    }
    this.mtu = Math.min(...mtus);
    this.leaseValue = this.publishedValue();

    await this.acquire(readPreviousSubnets(options.subnetFile));
    if (this.stopped) return;

    this.watch = new LeaseWatch(this.deps.store, options.network, this.deps.logger.child({ component: 'watch' }), {
      onChange: () => this.onLeasesChanged(),
      onHealth: (reachable) => {
        this.metrics.etcdReachable(reachable);
        this.status.etcdReachable(reachable);
      },
      onError: (operation) => this.metrics.etcdError(operation),
      now: this.now,
    });
    let seed = this.seedListing();
    await this.untilDone('lease watch', 'watch', async () => {
      await this.watch!.start(seed);
      seed = undefined; // a retry lists afresh
      return true;
    });
    if (this.stopped) return;
    this.phase = 'running';
    this.metrics.etcdReachable(true);
    this.every(options.resyncIntervalMs, () => {
      this.scheduleReconcile('resync');
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

  /** Idempotent: every caller waits for the one shutdown (the status record's removal included). */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutdown());
  }
  private stopping: Promise<void> | undefined;

  private async shutdown(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.watch?.stop();
    await this.status.stop();
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
    // weft's own refusals, beyond flanneld's rules (api/network-safety.ts): a config flanneld
    // would run with, but that would hurt this host (a range over the default route, a device
    // name the kernel refuses). Wait, not ready, as for an invalid config.
    const unsafe = networkSafetyProblems(config);
    if (unsafe.length > 0) {
      this.configProblem = unsafe.map((p) => `${p.field}: ${p.message}`).join('; ');
      return this.once(`config-unsafe-${record.kv.modRevision}`, `network config at ${key} is refused: ${this.configProblem}`);
    }
    this.configProblem = undefined;
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
    } catch (err) {
      if (isTransientStoreError(err)) this.metrics.etcdError('config');
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
    this.log.info('network config updated', {
      fields: change.applied.join(','),
      leaseTTLs: change.next.leaseTTLms / 1000,
      ...(change.next.ipv4 ? { subnetMin: change.next.ipv4.subnetMin.toString(), subnetMax: change.next.ipv4.subnetMax.toString() } : {}),
      ...(change.next.ipv6 ? { ipv6SubnetMin: change.next.ipv6.subnetMin.toString(), ipv6SubnetMax: change.next.ipv6.subnetMax.toString() } : {}),
    });
    if (change.subnetOutOfRange && this.held) {
      this.leaseLog.warn('our subnet is outside the network range now; giving it up for a new one', { key: this.held.key, ...subnetFields(this.held.subnets) });
      void this.acquire(undefined);
    } else if (change.applied.includes('leaseTTL')) {
      // The etcd lease in place keeps its TTL; renew now so the new one takes effect.
      this.scheduleRenewal(0);
    }
  }

  /** Why the stored config is refused (shown in readiness), while it is. */
  private configProblem: string | undefined;
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
      const result = await this.untilDone('lease', 'acquire', async () => {
        try {
          return await acquireLease({
            store: this.deps.store,
            writer: this.writer,
            config: this.config!,
            identity: { nodeName: this.deps.options.nodeName, publicIP: this.selection!.publicIP, publicIPv6: this.selection!.publicIPv6 },
            leaseValue: this.leaseValue!,
            previous,
            logger: this.leaseLog,
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
      this.metrics.leaseAcquired(result.kind);
      this.leaseLog.info('lease acquired', {
        key: result.held.key,
        ...subnetFields(result.held.subnets),
        how: result.how,
        reservation: result.held.reserved,
        ...(result.held.reserved ? {} : { expires: new Date(result.held.expiresAt).toISOString() }),
        attempts: result.attempts,
        ...(before && before.key !== result.held.key ? { previous: describeLeaseKey(before.subnets) } : {}),
      });
      this.writeEnv();
      void this.applyMasq();
      this.scheduleRenewal();
      if (this.phase !== 'running' && this.watch) this.phase = 'running';
      this.scheduleReconcile('event');
    });
  }

  /**
   * --ip-masq: keeps the masquerade rules for the network and our subnet (re-checked at every
   * resync, rewritten when our subnet changes); without the flag, removes any an earlier run left.
   */
  private async applyMasq(): Promise<void> {
    if (!this.held || !this.config || this.stopped) return;
    // IPv4 only: an IPv6 network's container traffic is not masqueraded (said once).
    if (this.deps.options.ipMasq && this.config.ipv6) this.once('masq-ipv6', '--ip-masq covers IPv4 only: IPv6 container traffic is not masqueraded');
    const network = this.config.ipv4?.network;
    const subnet = this.held.subnets.ipv4;
    const target = this.deps.options.ipMasq && network && subnet ? { network, subnet } : undefined;
    try {
      const change = await this.masq.sync(target);
      this.said.delete('masq-failed');
      if (change !== 'unchanged') this.log.info(describeMasqChange(change), { chain: this.masq.chain, ...(target ? { subnet: target.subnet.toString() } : {}) });
    } catch (err) {
      const what = target ? 'install the --ip-masq rules' : 'check for --ip-masq rules left by an earlier run';
      this.once('masq-failed', `cannot ${what} (retrying at each resync): ${(err as Error).message}`);
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
        const attempts = this.renewFailures + 1;
        this.renewFailures = 0;
        this.metrics.leaseRenewed(out.ok);
        if (out.ok) {
          this.held = out.held;
          this.leaseLog.info('lease renewed', { key: held.key, expires: new Date(out.held.expiresAt).toISOString(), ...(attempts > 1 ? { attempts } : {}) });
          this.scheduleRenewal();
        } else {
          this.leaseLost(held, `lease was changed or removed by someone else; re-acquiring`, { reason: out.reason });
        }
      } catch (err) {
        // Whatever the error, renewing goes on: thrown from here it would end in the timer's
        // unobserved promise, no renewal would ever be scheduled again, and the lease would
        // expire under a running agent (every peer then drops this host's routes).
        const transient = isTransientStoreError(err);
        this.metrics.leaseRenewed(false);
        if (transient) this.metrics.etcdError('renew');
        if (this.renewFailures++ === 0) {
          const fields = { key: held.key, err: (err as Error).message };
          if (transient) this.leaseLog.warn('lease renewal failed; retrying with backoff', fields);
          else this.leaseLog.error('lease renewal failed unexpectedly; retrying with backoff', fields);
        }
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
      // Another agent runs with our node name (a cloned VM), or someone forged our key.
      // Taking it back at once would make two clones trade one subnet forever; exiting would
      // turn one forged key into a restart loop. So back off (growing, up to 5 minutes), then
      // re-check and re-acquire: a forged key is taken back, clones trade ever more slowly.
      const delay = takeoverBackoff(++this.takeovers, this.deps.random ?? Math.random);
      this.reacquiring = true;
      this.metrics.leaseLost();
      this.leaseLog.warn('another agent with our node name took over our lease; node names must be unique. Re-checking after a back-off', {
        key: held.key,
        takerPublicIP: taker.publicIP,
        retryInSeconds: Math.round(delay / 1000),
      });
      this.after(delay, () => void this.acquire(held.subnets).finally(() => (this.reacquiring = false)));
      return;
    }
    this.leaseLost(held, record ? 'our lease was overwritten; re-acquiring' : 'our lease was deleted; re-acquiring');
  }

  /** Logged and counted once per loss, however it was noticed (a failed renewal, the watch). */
  private leaseLost(held: HeldLease, message: string, fields: Record<string, unknown> = {}): void {
    if (this.reacquiring) return;
    this.reacquiring = true;
    this.metrics.leaseLost();
    this.leaseLog.warn(message, { key: held.key, ...fields });
    void this.acquire(held.subnets).finally(() => (this.reacquiring = false));
  }
  private reacquiring = false;
  /** Takeovers by an agent with our node name so far (each backs off longer). */
  private takeovers = 0;
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
      this.leaseLog.info('our lease is now a reservation; renewals stop', { key: held.key });
      this.scheduleRenewal();
    } else {
      this.leaseLog.warn('our reservation now has an etcd lease attached; renewing it as a lease', { key: held.key });
      this.scheduleRenewal(0);
    }
  }

  /** The lease value for this host, from the stacks' devices as they are now. */
  private publishedValue(): LeaseValue {
    const mac = (family: 4 | 6) => this.stacks.find((s) => s.family === family)?.vtepMAC;
    return publishedLease({ config: this.config!, selection: this.selection!, nodeName: this.deps.options.nodeName, vtepMAC: mac(4), vtepMACv6: mac(6) });
  }

  /** A stack's vxlan device was recreated with a new MAC: publish it (BackendData or BackendV6Data). */
  private async republish(stack: Stack, vtepMAC: string): Promise<void> {
    await this.serialize(async () => {
      const held = this.held;
      if (!held || stack.vtepMAC === vtepMAC) return;
      const previous = stack.vtepMAC;
      stack.vtepMAC = vtepMAC;
      this.leaseValue = this.publishedValue();
      let out;
      try {
        out = held.reserved
          ? await this.writer.adopt(held.subnets, held.modRevision, held.value, this.leaseValue)
          : await this.writer.renew(held.subnets, held.modRevision, this.leaseValue, this.config!.leaseTTLms);
      } catch (err) {
        // Not published: the next reconcile sees the device's MAC differ again and retries.
        stack.vtepMAC = previous;
        this.leaseValue = this.publishedValue();
        throw err;
      }
      if (out.ok) {
        this.held = out.held;
        this.scheduleRenewal();
        this.leaseLog.info('published new VTEP MAC', { key: out.held.key, family: stack.family, vtepMAC });
      } else {
        void this.acquire(held.subnets);
      }
    });
  }

  // ---- dataplane ----

  private onLeasesChanged(): void {
    this.checkOwnLease();
    this.scheduleReconcile('event');
  }

  /**
   * Coalesces triggers: whatever arrives while a reconcile runs is folded into the next. A
   * resync or a retry re-reads the kernel; only the periodic resync counts as drift repair.
   */
  private scheduleReconcile(trigger: ReconcileTrigger): void {
    const r = this.reconcile;
    r.pending = true;
    r.resync ||= trigger === 'resync';
    r.retry ||= trigger === 'retry';
    if (r.running || this.stopped || !this.held || !this.watch) return;
    r.running = true;
    setImmediate(() => void this.reconcileLoop());
  }

  private async reconcileLoop(): Promise<void> {
    const r = this.reconcile;
    try {
      while (r.pending && !this.stopped && this.held && this.watch) {
        const trigger: ReconcileTrigger = r.resync ? 'resync' : r.retry ? 'retry' : 'event';
        const resync = r.resync || r.retry;
        r.pending = false;
        r.resync = false;
        r.retry = false;
        let desired = 0;
        try {
          const started = performance.now();
          const passes: StackPass[] = [];
          for (const stack of this.stacks) {
            const own = stack.family === 4 ? this.held.subnets.ipv4 : this.held.subnets.ipv6;
            if (!own) continue; // a lease without this family's half: nothing to converge for it
            const peers = stack.peers.select(this.watch.records.values(), this.held.key);
            if (passes.length === 0) {
              this.logPeerChanges(peers);
              desired = peers.length;
            }
            passes.push({ stack, own, peers, report: await stack.backend.reconcile(own, peers, { resync }) });
          }
          const report = combineReports(passes);
          desired = report.desired;
          this.status.reconciled(report);
          this.metrics.reconciled({
            trigger,
            peersDesired: report.desired,
            peersProgrammed: report.peersProgrammed,
            ops: report.byKind,
            seconds: (performance.now() - started) / 1000,
          });
          if (resync) this.log.debug('resync done', { peers: report.desired, operations: report.operations });
          // A pass that only failed again is a retry: its failure was logged with the first one.
          if (report.operations > 0 || (report.failures > 0 && r.failures === 0)) {
            const timing = { ms: Math.round(report.ms * 10) / 10, kernelMs: Math.round(report.kernelMs * 10) / 10 };
            const fields = { peers: report.desired, operations: report.operations, failures: report.failures, trigger, ...timing };
            // The periodic resync found the kernel changed behind our back (and put it right).
            if (trigger === 'resync' && report.operations > 0) this.log.warn('drift repaired', fields);
            else this.log.info('dataplane converged', fields);
          }
          if (report.failures > 0) {
            this.after(Math.min(30_000, 500 * 2 ** Math.min(r.failures++, 6)), () => this.scheduleReconcile('retry'));
          } else {
            if (r.failures > 0) this.log.info('dataplane recovered', { attempts: r.failures + 1 });
            r.failures = 0;
            if (!this.converged) {
              this.converged = true;
              this.metrics.setReady(true);
              this.log.info('ready', { ...subnetFields(this.held.subnets), peers: report.desired });
            }
          }
          for (const p of passes) {
            p.stack.routeConflicts = p.report.routeConflicts ?? 0;
            const mac = p.report.vtepMAC;
            if (mac && p.stack.vtepMAC && mac !== p.stack.vtepMAC) {
              void this.republish(p.stack, mac).catch((err: Error) =>
                this.leaseLog.warn('cannot publish the new VTEP MAC yet; retrying at the next reconcile', { err: err.message }),
              );
            }
          }
        } catch (err) {
          this.status.reconcileFailed(desired, (err as Error).message);
          // Once per failure streak, not once per retry.
          if (r.failures === 0) this.log.error('dataplane reconcile failed; will retry', { err: (err as Error).message });
          else this.log.debug('dataplane reconcile failed again', { attempt: r.failures + 1, err: (err as Error).message });
          this.after(Math.min(30_000, 500 * 2 ** Math.min(r.failures++, 6)), () => this.scheduleReconcile('retry'));
        }
      }
    } finally {
      r.running = false;
    }
  }

  /** One line per peer that joined, left or changed; one summary line when many did. */
  private logPeerChanges(peers: readonly Peer[]): void {
    const prefix = this.deps.store.layout.subnetsPrefix(this.deps.options.network);
    const changes = this.peerSet.diff(peers, (p) => {
      const record = this.watch?.records.get(prefix + p.key);
      const node = record?.lease.ok ? record.lease.value.nodeName : undefined;
      return { key: prefix + p.key, publicIP: p.publicIP.toString(), ...(p.vtepMAC ? { vtepMAC: p.vtepMAC } : {}), ...(node ? { node } : {}) };
    });
    for (const line of peerChangeLines(changes)) this.peerLog.info(line.msg, line.fields);
  }

  // ---- plumbing ----

  /** Retries op while etcd is unavailable (logging the outage once) or op returns undefined. */
  private async untilDone<T>(what: string, operation: EtcdOperation, op: () => Promise<T | undefined>): Promise<T> {
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
        if (isTransientStoreError(err)) this.metrics.etcdError(operation);
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

/** The wait before re-checking a lease taken over under our node name: 3 s doubling to 5 min, with jitter. */
export function takeoverBackoff(takeovers: number, random: () => number): number {
  const base = Math.min(300_000, 3000 * 2 ** Math.min(takeovers - 1, 10));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Log fields for a key's subnets: `subnet` (IPv4) as always, `ipv6Subnet` beside it. */
function subnetFields(k: LeaseKey): Record<string, string> {
  return {
    ...(k.ipv4 ? { subnet: k.ipv4.toString() } : {}),
    ...(k.ipv6 ? { ipv6Subnet: k.ipv6.toString() } : {}),
  };
}

interface StackPass {
  stack: Stack;
  own: IpNet;
  peers: Peer[];
  report: ReconcileReport;
}

/**
 * One reconcile's outcome over all stacks, counted per host: a peer host is desired once
 * (the first stack's count; every family sees the same hosts) and programmed only as far as
 * every family has it (the smallest count, a lower bound). Operations, failures and timings add up.
 */
export function combineReports(passes: readonly Pick<StackPass, 'peers' | 'report'>[]): {
  desired: number;
  peersProgrammed: number;
  skipped: number;
  operations: number;
  failures: number;
  byKind: KernelOpCounts;
  ms: number;
  kernelMs: number;
} {
  const byKind: KernelOpCounts = { route: { ok: 0, failed: 0 }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
  const out = { desired: passes[0]?.peers.length ?? 0, peersProgrammed: Infinity, skipped: 0, operations: 0, failures: 0, byKind, ms: 0, kernelMs: 0 };
  for (const { peers, report } of passes) {
    out.peersProgrammed = Math.min(out.peersProgrammed, report.peersProgrammed ?? (report.failures === 0 ? peers.length : 0));
    out.skipped = Math.max(out.skipped, report.skipped ?? 0);
    out.operations += report.operations;
    out.failures += report.failures;
    out.ms += report.ms ?? 0;
    out.kernelMs += report.kernelMs ?? 0;
    const kinds = report.byKind ?? { route: { ok: report.operations, failed: report.failures }, neigh: { ok: 0, failed: 0 }, fdb: { ok: 0, failed: 0 } };
    for (const k of ['route', 'neigh', 'fdb'] as const) {
      byKind[k].ok += kinds[k].ok;
      byKind[k].failed += kinds[k].failed;
    }
  }
  if (out.peersProgrammed === Infinity) out.peersProgrammed = 0;
  return out;
}
