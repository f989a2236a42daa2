// The agent's node status record: what it is built from (pure), when a change is worth a
// write (pure), and a small publisher that checks once a second and writes through
// NodeStatusWriter. Publishing is best effort: a failure is logged once per outage and
// retried with backoff; it never reaches the lease or the dataplane.
import { encodeNodeStatus, MAX_REASON_LENGTH, NODE_STATUS_VERSION, type NodeStatus, type PeerCounts } from '../api/node-status.js';
import { isoTime } from '../iso-time.js';
import { printableLine } from '../printable.js';
import type { Logger } from '../log.js';
import type { HeldLease } from '../store/leases.js';
import { NodeStatusWriter } from '../store/node-status.js';
import type { Store } from '../store/store.js';
import { weftVersion } from '../version.js';
import { Backoff, RETRY } from '../backoff.js';

/** What the last reconcile said, as the agent reports it. */
export interface SyncReport {
  desired: number;
  skipped: number;
  /** Kernel operations refused. */
  failures: number;
  /** The reconcile threw (no report at all). */
  error?: string;
  /** When it ended. */
  at: number;
}

export interface StatusInput {
  nodeName: string;
  network: string;
  version: string;
  startedAt: number;
  /** The agent's own readiness (config, lease, first convergence). */
  agent: { ok: boolean; reason: string };
  lease?: { name: string; subnet?: string; subnetIPv6?: string; reserved: boolean };
  publicIP?: string;
  publicIPv6?: string;
  /** The last reconcile, and the last one without kernel failures. */
  sync?: SyncReport;
  lastSuccessAt?: number;
}

function iso(ms: number): string {
  return isoTime(ms);
}

function clip(text: string): string {
  // Reasons carry error messages: keep them one printable line of bounded length.
  const line = printableLine(text);
  return line.length > MAX_REASON_LENGTH ? line.slice(0, MAX_REASON_LENGTH - 3) + '...' : line;
}

/** The record for this moment. Ready means: the agent is ready and the last reconcile went through. */
export function buildNodeStatus(input: StatusInput, now: number): NodeStatus {
  const sync = input.sync;
  const peers: PeerCounts = sync
    ? {
        desired: sync.desired,
        // Each refused operation may leave one peer incomplete: a lower bound.
        programmed: sync.error !== undefined ? 0 : Math.max(0, sync.desired - sync.skipped - sync.failures),
        skipped: Math.min(sync.skipped, sync.desired),
      }
    : { desired: 0, programmed: 0, skipped: 0 };
  let reason: string | undefined;
  if (!input.agent.ok) reason = input.agent.reason;
  else if (!sync) reason = 'converging the dataplane';
  else if (sync.error !== undefined) reason = `dataplane reconcile failed (retrying): ${sync.error}`;
  else if (sync.failures > 0) reason = `the kernel refused ${sync.failures} operation${sync.failures === 1 ? '' : 's'} at the last reconcile (retrying)`;
  const lease = input.lease;
  return {
    v: NODE_STATUS_VERSION,
    nodeName: input.nodeName,
    network: input.network,
    ...(lease ? { lease: lease.name } : {}),
    ...(lease?.subnet ? { subnet: lease.subnet } : {}),
    ...(lease?.subnetIPv6 ? { subnetIPv6: lease.subnetIPv6 } : {}),
    ...(input.publicIP ? { publicIP: input.publicIP } : {}),
    ...(input.publicIPv6 ? { publicIPv6: input.publicIPv6 } : {}),
    ...(lease?.reserved ? { reserved: true } : {}),
    peers,
    ...(input.lastSuccessAt !== undefined ? { lastSync: iso(input.lastSuccessAt) } : {}),
    ready: reason === undefined,
    ...(reason !== undefined ? { reason: clip(reason) } : {}),
    version: input.version,
    startedAt: iso(input.startedAt),
    publishedAt: iso(now),
  };
}

// ---- when to write ------------------------------------------------------------------------

/**
 * - `state`: readiness, reason, lease, addresses, version: written within minIntervalMs;
 * - `progress`: peer counts only: within an interval that grows with the fleet (10 ms per
 *   peer, 2 s..60 s), so that N agents following the same lease events write about 100
 *   records a second in all, not N per event;
 * - `sync`: only the last sync time moved: at most once per heartbeatMs.
 */
export type StatusChange = 'none' | 'state' | 'progress' | 'sync';

export interface PublishPolicy {
  minIntervalMs: number;
  perPeerMs: number;
  maxProgressIntervalMs: number;
  heartbeatMs: number;
}

export const DEFAULT_POLICY: PublishPolicy = {
  minIntervalMs: 2000,
  perPeerMs: 10,
  maxProgressIntervalMs: 60_000,
  heartbeatMs: 60_000,
};

export function classifyChange(published: NodeStatus | undefined, next: NodeStatus): StatusChange {
  if (!published) return 'state';
  const strip = (s: NodeStatus) => encodeNodeStatus({ ...s, peers: { desired: 0, programmed: 0, skipped: 0 }, lastSync: undefined, publishedAt: '' });
  if (strip(published) !== strip(next)) return 'state';
  const p = published.peers;
  const n = next.peers;
  if (p.desired !== n.desired || p.programmed !== n.programmed || p.skipped !== n.skipped) return 'progress';
  return published.lastSync !== next.lastSync ? 'sync' : 'none';
}

export function progressIntervalMs(desiredPeers: number, policy: PublishPolicy = DEFAULT_POLICY): number {
  return Math.min(policy.maxProgressIntervalMs, Math.max(policy.minIntervalMs, desiredPeers * policy.perPeerMs));
}

/**
 * When a pending change is due. `pendingSince` is when the change was first seen and
 * `jitter` (0..1, drawn then) spreads the writes of agents that saw the same event.
 */
export function dueAt(
  change: StatusChange,
  lastPublishedAt: number,
  pendingSince: number,
  jitter: number,
  desiredPeers: number,
  policy: PublishPolicy = DEFAULT_POLICY,
): number | undefined {
  switch (change) {
    case 'none':
      return undefined;
    case 'state':
      return lastPublishedAt + policy.minIntervalMs;
    case 'progress': {
      const interval = progressIntervalMs(desiredPeers, policy);
      return Math.max(lastPublishedAt + interval, pendingSince + jitter * interval);
    }
    case 'sync':
      return lastPublishedAt + Math.max(policy.heartbeatMs, progressIntervalMs(desiredPeers, policy));
  }
}

// ---- the publisher --------------------------------------------------------------------------

export interface StatusSink {
  put(value: string): Promise<void>;
  /** Refreshes the record's etcd lease once (the lost handler fires when it is gone). */
  keepAlive(): Promise<void>;
  readonly ttlSeconds: number;
  revoke(): Promise<void>;
  abandon(): void;
  onLost(handler: () => void): void;
  readonly key: string;
}

export interface StatusPublisherOptions {
  sink: StatusSink;
  logger: Logger;
  /** Everything but the sync facts, read at each check. */
  observe: () => Omit<StatusInput, 'sync' | 'lastSuccessAt'>;
  now?: () => number;
  random?: () => number;
  tickMs?: number;
  policy?: Partial<PublishPolicy>;
}

export class StatusPublisher {
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly policy: PublishPolicy;
  private readonly tickMs: number;
  private sync: SyncReport | undefined;
  private lastSuccessAt: number | undefined;
  private published: { record: NodeStatus; at: number } | undefined;
  private pending: { since: number; jitter: number } | undefined;
  private force = true;
  private readonly backoff = new Backoff(RETRY.status);
  /** A bug building the record was logged (once). */
  private buildFailed = false;
  private retryAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  /** When the record's etcd lease was last written or refreshed. */
  private renewedAt = 0;
  private stopped = false;
  private reachable = true;

  constructor(private readonly opts: StatusPublisherOptions) {
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.policy = { ...DEFAULT_POLICY, ...opts.policy };
    this.tickMs = opts.tickMs ?? 1000;
    opts.sink.onLost(() => {
      // The record went with its etcd lease (expired in an outage, revoked by someone).
      this.force = true;
      this.published = undefined;
    });
  }

  /** The agent reports each reconcile's outcome here. */
  reconciled(report: { desired: number; skipped?: number; failures: number }): void {
    const at = this.now();
    this.sync = { desired: report.desired, skipped: report.skipped ?? 0, failures: report.failures, at };
    if (report.failures === 0) this.lastSuccessAt = at;
  }

  /**
   * While the agent's lease watch reports etcd unreachable, nothing is attempted: the watch
   * already logged the outage, and the record is written once etcd answers again.
   */
  etcdReachable(reachable: boolean): void {
    this.reachable = reachable;
    if (reachable) this.retryAt = 0;
  }

  reconcileFailed(desired: number, message: string): void {
    this.sync = { desired, skipped: 0, failures: 0, error: message, at: this.now() };
  }

  /** The record as it would be published now. */
  current(): NodeStatus {
    return buildNodeStatus(
      { ...this.opts.observe(), ...(this.sync ? { sync: this.sync } : {}), ...(this.lastSuccessAt !== undefined ? { lastSuccessAt: this.lastSuccessAt } : {}) },
      this.now(),
    );
  }

  start(): void {
    if (this.stopped || this.timer) return;
    const tick = () => {
      this.timer = undefined;
      if (this.stopped) return;
      void this.check()
        .catch((err: unknown) => {
          // A bug here must never take the agent down: status is best effort.
          if (!this.buildFailed) this.opts.logger.warn('cannot build the node status', { err: String(err) });
          this.buildFailed = true;
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.tickMs);
        });
    };
    // The first check one tick after the start, not at once: the record's etcd lease is
    // etcd3's (node-status.ts), whose loading and first connection took the agent's thread
    // for ~50 ms in the middle of its start, before the first kernel work (the rest of the
    // start goes over the store's direct client).
    this.timer = setTimeout(tick, this.tickMs);
  }

  /**
   * Stops publishing and revokes the record's etcd lease, so the record goes at once. Bounded
   * (shutdown must stay prompt while etcd is away): past the bound the lease is abandoned and
   * the record expires at its TTL. A put still in flight dies with the revoked lease.
   */
  async stop(boundMs = 3000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    let bound: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      this.opts.sink.revoke().then(
        () => undefined,
        (err: Error) => err.message,
      ),
      new Promise<string>((resolve) => (bound = setTimeout(() => resolve(`no answer from etcd within ${boundMs} ms`), boundMs))),
    ]);
    clearTimeout(bound);
    if (outcome !== undefined) {
      this.opts.sink.abandon();
      this.opts.logger.warn('cannot remove the node status record; it expires with its etcd lease', { key: this.opts.sink.key, err: outcome });
    }
  }

  /** One check: publish if a change is due, else refresh the etcd lease if due (tests drive it too). */
  async check(): Promise<void> {
    if (this.stopped || this.inFlight || !this.reachable) return;
    const now = this.now();
    if (now < this.retryAt) return;
    this.inFlight = this.step(now);
    try {
      await this.inFlight;
    } finally {
      this.inFlight = undefined;
    }
  }

  private async step(now: number): Promise<void> {
    const next = this.current();
    const change = this.force ? 'state' : classifyChange(this.published?.record, next);
    if (change === 'none') this.pending = undefined;
    else this.pending ??= { since: now, jitter: this.random() };
    const due =
      change === 'none' ? undefined : this.force || !this.published ? now : dueAt(change, this.published.at, this.pending!.since, this.pending!.jitter, next.peers.desired, this.policy);
    if (due !== undefined && due <= now) {
      await this.attempt(async () => {
        this.force = false;
        await this.opts.sink.put(encodeNodeStatus(next));
        this.pending = undefined;
        // A lease lost while the put was in flight may have taken the record with it: force stays set.
        if (!this.force) this.published = { record: next, at: now };
      }, now);
    } else if (this.published && now - this.renewedAt >= (this.opts.sink.ttlSeconds * 1000) / 3) {
      await this.attempt(() => this.opts.sink.keepAlive(), now);
    }
  }

  /** Runs one write or keepalive; a failure is logged once per outage and retried with backoff. */
  private async attempt(op: () => Promise<void>, now: number): Promise<void> {
    const log = this.opts.logger;
    try {
      await op();
      this.renewedAt = now;
      if (this.backoff.failures > 0) log.info('node status published again', { key: this.opts.sink.key, attempts: this.backoff.failures + 1 });
      this.backoff.reset();
      this.retryAt = 0;
    } catch (err) {
      if (this.stopped) return;
      if (this.backoff.failures === 0) log.warn('cannot publish the node status; retrying with backoff', { key: this.opts.sink.key, err: (err as Error).message });
      this.force = true;
      this.retryAt = this.now() + this.backoff.next();
    }
  }
}

// ---- wiring for the agent ---------------------------------------------------------------------

/** What the agent exposes to its status record, read at each check. */
export interface AgentView {
  ready: { ok: boolean; reason: string };
  held?: HeldLease | undefined;
  publicIP?: string | undefined;
  publicIPv6?: string | undefined;
}

/** The publisher for one agent: its key, its own etcd lease, its identity and start time. */
export function agentStatusPublisher(
  store: Store,
  identity: { network: string; nodeName: string },
  logger: Logger,
  view: () => AgentView,
  now: () => number = Date.now,
): StatusPublisher {
  const { network, nodeName } = identity;
  const sink = new NodeStatusWriter(store, store.layout.nodeStatusKey(network, nodeName));
  const subnets = store.layout.subnetsPrefix(network);
  const base = { nodeName, network, version: weftVersion(), startedAt: now() };
  return new StatusPublisher({
    sink,
    logger,
    now,
    observe: () => {
      const v = view();
      const held = v.held;
      return {
        ...base,
        agent: v.ready,
        ...(held
          ? {
              lease: {
                name: held.key.slice(subnets.length),
                ...(held.subnets.ipv4 ? { subnet: held.subnets.ipv4.toString() } : {}),
                ...(held.subnets.ipv6 ? { subnetIPv6: held.subnets.ipv6.toString() } : {}),
                reserved: held.reserved,
              },
            }
          : {}),
        ...(v.publicIP ? { publicIP: v.publicIP } : {}),
        ...(v.publicIPv6 ? { publicIPv6: v.publicIPv6 } : {}),
      };
    },
  });
}
