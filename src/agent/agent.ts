// The agent's lifecycle: network config -> uplink -> devices -> lease -> subnet.env -> watch
// leases -> converge the kernel; renew the lease, resync the kernel and re-read the config
// periodically. This file only puts the parts together:
//   config-reload.ts   the Network, read at start and at every resync tick
//   lease-keeper.ts    the lease: acquire, renew, notice its loss, follow reservations
//   lease-watch.ts     the lease set from etcd, as typed changes
//   reconcile-loop.ts  peer changes -> each family's backend, coalesced, retried
//   host-config.ts     subnet.env and the iptables rules (--ip-masq, FORWARD)
//   retry.ts           the one backoff policy
import { isUserError, namedError } from '../api/errors.js';
import { StoreAuthError } from '../store/errors.js';
import { describeLeaseKey } from '../api/lease.js';
import type { NetworkConfig } from '../api/network.js';
import type { Backend, BackendSettings } from '../dataplane/types.js';
import type { Logger } from '../log.js';
import { isTransientStoreError } from '../store/client.js';
import type { HeldLease } from '../store/leases.js';
import { subnetRecord, type Store, type SubnetRecord } from '../store/store.js';
import type { AcquireResult, PlannedLease } from './acquire.js';
import { ConfigReloader } from './config-reload.js';
import type { AgentOptions } from './flags.js';
import { HostConfig, type RuleSyncer } from './host-config.js';
import { selectInterface, type HostSnapshot, type Selection } from './iface.js';
import { LeaseKeeper, subnetFields } from './lease-keeper.js';
import { LeaseWatch, wholeRecord, type LeaseChange } from './lease-watch.js';
import { AgentMetrics, type EtcdOperation } from './metrics.js';
import { PeerSet } from './peer-set.js';
import { peerScreens, uplinkOverlaps } from './peer-screens.js';
import { ReconcileLoop, type Stack } from './reconcile-loop.js';
import { untilDone, type ErrorVerdict } from './retry.js';
import { agentStatusPublisher, type StatusPublisher } from './status.js';
import { readPreviousSubnets } from './subnet-env.js';
import { Timers, WarnOnce } from './timers.js';

export { combineReports } from './reconcile-loop.js';

export interface AgentDeps {
  options: AgentOptions;
  store: Store;
  logger: Logger;
  readHost: (canReach?: string, opts?: { ipv6?: boolean }) => Promise<HostSnapshot>;
  /** Counters and gauges for /metrics; a private registry by default. */
  metrics?: AgentMetrics;
  /** A backend for one address family (`settings.family`); asked for once per stack the network has. */
  createBackend: (settings: BackendSettings, selection: Selection) => Backend;
  /** The iptables rules' keeper (--ip-masq, FORWARD); iptables in this process's namespace by default. */
  rules?: RuleSyncer;
  now?: () => number;
  random?: () => number;
}

/** The agent cannot go on (bad flags for this host, refused credentials). */
export class FatalAgentError extends namedError('FatalAgentError') {}

type Phase = 'config' | 'acquiring' | 'out-of-subnets' | 'running';

export class Agent {
  private phase: Phase = 'config';
  private config: NetworkConfig | undefined;
  private selection: Selection | undefined;
  private readonly stacks: Stack[] = [];
  private mtu = 0;
  private watch: LeaseWatch | undefined;
  /** The lease watch has started (after the first acquisition). */
  private watching = false;
  /**
   * The first acquisition's plan while its write is in flight: the peers are programmed
   * around its subnets from its listing (programBeforeLease) until a lease is held.
   */
  private planned: PlannedLease | undefined;
  /** The watch was seeded with the first acquisition's listing before the lease was ours. */
  private seededEarly = false;
  private lease: LeaseKeeper | undefined;
  private loop: ReconcileLoop | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  /** Ends run()'s wait for the first pass with the lease held (at stop). */
  private firstPassWaiter: (() => void) | undefined;
  /** The listing the first acquisition used; it seeds the lease watch. */
  private lastListing: { records: SubnetRecord[]; revision: number } | undefined;
  private readonly now: () => number;
  private readonly timers = new Timers();
  private readonly log: Logger;
  private readonly once: WarnOnce;
  private readonly metrics: AgentMetrics;
  private readonly configs: ConfigReloader;
  private readonly host: HostConfig;
  /** The node status record at <prefix>/_weft/nodes/<network>/<node>. */
  private readonly status: StatusPublisher;

  constructor(private readonly deps: AgentDeps) {
    this.now = deps.now ?? Date.now;
    this.log = deps.logger.child({ component: 'agent' });
    this.once = new WarnOnce(this.log);
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
    this.configs = new ConfigReloader(deps.store, deps.options.network, this.log, this.once);
    this.host = new HostConfig(deps.options, this.log, this.once, deps.rules);
    this.status = agentStatusPublisher(deps.store, deps.options, this.log, () => ({
      ready: this.ready(),
      held: this.held,
      publicIP: this.selection?.publicIP?.toString(),
      publicIPv6: this.selection?.publicIPv6?.toString(),
    }), this.now);
  }

  private get held(): HeldLease | undefined {
    return this.lease?.held;
  }

  ready(): { ok: boolean; reason: string } {
    if (this.phase === 'config') {
      const problem = this.configs.problem;
      return { ok: false, reason: problem ? `waiting for a usable network config: ${problem}` : 'waiting for the network config' };
    }
    if (this.phase === 'out-of-subnets') return { ok: false, reason: 'out of subnets' };
    const held = this.held;
    if (!held) return { ok: false, reason: 'acquiring a lease' };
    if (!this.loop?.converged) return { ok: false, reason: 'converging the dataplane' };
    // At start the lease watch starts once the first pass has run (run()).
    if (this.phase !== 'running') return { ok: false, reason: 'starting the lease watch' };
    return { ok: true, reason: `ok ${describeLeaseKey(held.subnets)}` };
  }

  /** Runs until stop(); throws FatalAgentError when it cannot start. */
  async run(): Promise<void> {
    const { options } = this.deps;
    this.status.start();
    // The listing the acquisition starts from, asked for now: its answer (thousands of leases at
    // scale) arrives and is decoded while the config, the interfaces and the devices are read.
    // Used only when the config came at the first read; after a wait it would be old.
    // Dropped once the acquisition has it (below): this frame lives as long as the agent, and
    // the lease watch keeps only marks of the leases but ours (keepsRecord).
    let listing: Promise<{ records: SubnetRecord[]; revision: number } | undefined> | undefined = this.deps.store.listSubnets(options.network).catch(() => undefined);
    // Its size, counted by etcd: known long before the listing is in, so that what a bulk
    // first pass needs (netlink's thread, ~0.1 s to load) is ready when the listing is.
    const leaseCount = this.deps.store.countSubnets(options.network).catch(() => undefined);
    // The host's interfaces and routes likewise (IPv6's default route too: the config may want it).
    const earlyHost = this.deps.readHost(options.ifaceCanReach, { ipv6: true });
    earlyHost.catch(() => {}); // awaited below, or dropped after a wait for the config
    let configReads = 0;
    this.config = await this.untilDone('network config', 'config', () => {
      configReads++;
      return this.configs.read();
    });
    if (!this.config || this.stopped) return;
    const config = this.config;

    const families = { ipv4: config.ipv4 !== undefined, ipv6: config.ipv6 !== undefined };
    const host = configReads === 1 ? await earlyHost : await this.deps.readHost(options.ifaceCanReach, { ipv6: families.ipv6 });
    try {
      this.selection = selectInterface(options, host, families);
    } catch (err) {
      throw new FatalAgentError((err as Error).message);
    }
    const sel = this.selection;
    // The peer screen's view of this host (api/peer-screen.ts), per family.
    const screens = peerScreens(config, sel, host);
    for (const p of uplinkOverlaps(config, sel)) {
      this.log.warn('the network overlaps the uplink\'s network; peers in that part of it are not routed', {
        key: this.deps.store.layout.configKey(options.network),
        field: p.field,
        reason: p.message,
      });
    }
    this.log.info('using interface', {
      iface: sel.link.name,
      ...(sel.uplink ? { address: sel.uplink.address.toString(), publicIP: sel.publicIP!.toString() } : {}),
      ...(sel.uplink6 ? { address6: sel.uplink6.address.toString(), publicIPv6: sel.publicIPv6!.toString() } : {}),
      how: sel.how,
      mtu: sel.link.mtu,
    });

    this.lease = this.leaseKeeper(sel);
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
    const peerLog = this.deps.logger.child({ component: 'peers' });
    for (const [family, stack] of [[4, config.ipv4], [6, config.ipv6]] as const) {
      if (!stack) continue;
      const backend = this.deps.createBackend({ ...settings, family, network: stack.network }, sel);
      // Thousands of leases make the first pass a bulk one: what it needs gets ready meanwhile.
      if (configReads === 1) {
        const expect = (n: number | undefined) => {
          if (n !== undefined && !this.stopped) backend.expectPeers?.(n);
        };
        void leaseCount.then(expect);
        void listing.then((l) => expect(l?.records.length));
      }
      const prepared = await backend.prepare();
      // The kernel's own notifications (netlink): entries or the device changed behind our back.
      backend.onDrift?.((what) => this.loop?.drift(what));
      mtus.push(prepared.mtu);
      // Unusable leases are reported by the first stack only: one line per lease, not per family.
      this.stacks.push({ family, backend, peers: new PeerSet(peerLog, settings.type, family, this.stacks.length === 0, screens[family]) });
      this.lease.setVtepMAC(family, prepared.vtepMAC);
    }
    this.mtu = Math.min(...mtus);
    this.loop = this.reconcileLoop(peerLog);

    this.watch = new LeaseWatch(this.deps.store, options.network, this.deps.logger.child({ component: 'watch' }), {
      onChanges: (changes) => this.leasesChanged(changes),
      onHealth: (reachable) => {
        this.metrics.etcdReachable(reachable);
        this.status.etcdReachable(reachable);
      },
      onError: (operation) => this.metrics.etcdError(operation),
      now: this.now,
      // The lease keeper compares our own key's record with what it wrote (check()); the
      // others' records go to the peer sets with their changes, and no one reads them again.
      keepsRecord: (key) => key === this.held?.key || key === this.planned?.key,
    });
    this.phase = 'acquiring';
    await this.lease.acquire(readPreviousSubnets(options.subnetFile), configReads === 1 ? listing : undefined, (planned, l) => this.programBeforeLease(planned, l));
    listing = undefined;
    if (this.stopped) return;

    // Unless the peers went in before the lease (programBeforeLease), the acquisition's listing
    // goes to the peer sets now, and the first pass with the lease (the bulk of the kernel work
    // at start, or what the one before the lease left) runs.
    const seed = this.seedListing();
    if (seed) this.watch.seed(seed);
    this.loop.start();
    // The watch starts once that pass has run. It watches from the listing's revision, so it
    // misses nothing meanwhile; its start (a connection, a stream, the replay of our own
    // write) took the agent's thread while the pass modelled the chunks the kernel was
    // waiting for (~20 ms of a start at 5,000 peers).
    await new Promise<void>((resolve) => {
      this.loop!.whenPassed(resolve);
      this.firstPassWaiter = resolve;
    });
    this.firstPassWaiter = undefined;
    if (this.stopped) return;
    await this.untilDone('lease watch', 'watch', async () => {
      await this.watch!.start();
      return true;
    });
    if (this.stopped) return;
    this.watching = true;
    this.phase = 'running';
    this.metrics.etcdReachable(true);
    this.timers.every(options.resyncIntervalMs, () => {
      this.loop?.schedule('resync');
      void this.reloadConfig();
    });
    // flanneld's --iptables-resync: the iptables rules are checked (and repaired) on their own clock.
    this.timers.every(options.iptablesResyncMs, () => {
      if (this.held && this.config) void this.host.applyRules(this.config, this.held.subnets);
    });
    await new Promise<void>((resolve) => (this.wake = resolve));
  }

  private leaseKeeper(selection: Selection): LeaseKeeper {
    const { options } = this.deps;
    return new LeaseKeeper({
      store: this.deps.store,
      network: options.network,
      nodeName: options.nodeName,
      renewMarginMs: options.renewMarginMs,
      log: this.deps.logger.child({ component: 'lease' }),
      metrics: this.metrics,
      timers: this.timers,
      now: this.now,
      ...(this.deps.random ? { random: this.deps.random } : {}),
      config: () => this.config!,
      selection,
      untilDone: (operation, op) => this.untilDone('lease', operation, op),
      onAcquired: (result) => this.acquired(result),
      onOutOfSubnets: (message) => {
        if (this.phase !== 'running') this.phase = 'out-of-subnets';
        this.once.warn('full', message);
      },
    });
  }

  private reconcileLoop(peerLog: Logger): ReconcileLoop {
    return new ReconcileLoop({
      stacks: this.stacks,
      held: () => this.held?.subnets,
      planned: () => this.planned?.subnets,
      log: this.log,
      peerLog,
      metrics: this.metrics,
      timers: this.timers,
      onReport: (report) => this.status.reconciled(report),
      onFailure: (desired, message) => this.status.reconcileFailed(desired, message),
      onConverged: (report) => {
        this.metrics.setReady(true);
        this.log.info('ready', { ...(this.held ? subnetFields(this.held.subnets) : {}), peers: report.desired });
      },
      onVtepMAC: (family, mac) => {
        const published = this.lease?.vtepMAC(family);
        if (!published || published === mac) return;
        void this.lease!.republish(family, mac).catch((err: Error) =>
          this.deps.logger.child({ component: 'lease' }).warn('cannot publish the new VTEP MAC yet; retrying at the next reconcile', { err: err.message }),
        );
      },
    });
  }

  /** A lease was acquired: files and rules for it, our key out of the peers, then a pass. */
  private acquired(result: AcquireResult): void {
    this.once.forget('full');
    this.lastListing = result.listing;
    if (this.planned && this.planned.key !== result.held.key) {
      this.log.info('the planned subnet went to another host first; the peers are programmed again around ours', { planned: this.planned.key, key: result.held.key });
    }
    this.planned = undefined;
    if (this.phase !== 'running' && this.watching) this.phase = 'running';
    else if (this.phase === 'out-of-subnets') this.phase = 'acquiring';
    this.host.writeEnv(this.config!, result.held.subnets, this.mtu);
    // The iptables rules after the pass below: their processes would otherwise share the CPU
    // with the kernel programming that makes this host reachable (thousands of peers at start).
    this.loop!.whenPassed(() => {
      const held = this.held;
      if (!this.stopped && held && this.config) void this.host.applyRules(this.config, held.subnets);
    });
    this.loop!.setOwnKey(result.held.key);
    this.loop!.schedule('event');
  }

  /** The lease watch's changes: to the peer sets, and to the lease keeper when our key is among them. */
  private leasesChanged(changes: readonly LeaseChange[]): void {
    this.loop?.leasesChanged(changes);
    const held = this.held;
    if (held && this.watch && changes.some((c) => c.key === held.key)) {
      // Kept whole (keepsRecord): made in this same turn, while the key was already ours.
      const own = this.watch.records.get(held.key);
      if (own === undefined || wholeRecord(own)) this.lease!.check(wholeRecord(own));
    }
  }

  /** Idempotent: every caller waits for the one shutdown (the status record's removal included). */
  stop(): Promise<void> {
    return (this.stopping ??= this.shutdown());
  }
  private stopping: Promise<void> | undefined;

  private async shutdown(): Promise<void> {
    this.stopped = true;
    this.firstPassWaiter?.();
    this.timers.stop();
    this.lease?.stop();
    this.loop?.stop();
    await this.watch?.stop();
    await this.status.stop();
    this.wake?.();
  }

  /**
   * The first acquisition has planned which subnets to hold, from a listing of every lease:
   * the peers go to the peer sets and the kernel now, around those subnets, while the
   * acquisition's transaction is in flight (at thousands of peers the kernel's work is most
   * of the start-up). Nothing of this host's own is set before the lease is ours (the device's
   * address, subnet.env, the iptables rules: acquired()). Should the write lose a race, the
   * lease we get instead becomes the own subnet, and the next pass re-evaluates every peer
   * around it. The watch starts from this listing's revision, so it replays our own write
   * and anything else written since.
   */
  private programBeforeLease(planned: PlannedLease, listing: { records: SubnetRecord[]; revision: number }): void {
    if (this.stopped || this.held || !this.watch || !this.loop) return;
    this.planned = planned;
    this.seededEarly = true;
    this.log.debug('programming the peers before the lease is ours', { planned: planned.key, leases: listing.records.length });
    this.loop.setOwnKey(planned.key);
    this.watch.seed(listing);
    this.loop.start();
  }

  /**
   * The acquisition's listing, with our own key as we just wrote it (the listing predates
   * the write; the watch, started from the listing's revision, replays it and what followed).
   */
  private seedListing(): { records: SubnetRecord[]; revision: number } | undefined {
    const listing = this.lastListing;
    const held = this.held;
    this.lastListing = undefined;
    if (!listing || !held || this.seededEarly) return undefined;
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

  /** At every resync tick: a new lease TTL or subnet range applies live. */
  private async reloadConfig(): Promise<void> {
    const current = this.config;
    if (!current || this.stopped) return;
    let change;
    try {
      change = await this.configs.reload(current, this.held?.subnets);
    } catch (err) {
      if (isTransientStoreError(err)) this.metrics.etcdError('config');
      return; // etcd away: the lease watch reports outages; try again next tick
    }
    if (!change || this.stopped) return;
    this.config = change.next;
    if (change.subnetOutOfRange) this.lease?.giveUp();
    // The etcd lease in place keeps its TTL; renew now so the new one takes effect.
    else if (change.applied.includes('leaseTTL')) this.lease?.scheduleRenewal(0);
  }

  /** Retries op while etcd is unavailable (logging the outage once) or op returns undefined. */
  private untilDone<T>(what: string, operation: EtcdOperation, op: () => Promise<T | undefined>): Promise<T | undefined> {
    return untilDone(op, {
      what,
      log: this.log,
      classify: classifyAgentError,
      onTransient: () => this.metrics.etcdError(operation),
      stopped: () => this.stopped,
      wait: (ms) => this.timers.wait(ms),
    });
  }
}

/** Refused credentials and bad input stop the agent; an unavailable etcd and a lost race are retried. */
function classifyAgentError(err: unknown): ErrorVerdict {
  if (err instanceof StoreAuthError || isUserError(err)) return { retry: false, error: new FatalAgentError((err as Error).message) };
  if (isTransientStoreError(err)) return { retry: true, transient: true };
  if (err instanceof Error && err.name === 'ContentionError') return { retry: true, transient: false };
  return { retry: false, error: err instanceof Error ? err : new Error(String(err)) };
}
