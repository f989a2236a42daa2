// The lease this host holds, over its whole life: acquire it, renew it before it expires,
// notice (from the lease watch) when someone else changed or deleted it and acquire again,
// follow an operator turning it into a reservation and back, and publish a new VTEP MAC.
// Every write goes through one queue, so two of them never race each other.
import { describeLeaseKey, encodeLease, type LeaseKey, type LeaseValue } from '../api/lease.js';
import type { NetworkConfig } from '../api/network.js';
import { isoTime } from '../iso-time.js';
import type { Logger } from '../log.js';
import { isTransientStoreError } from '../store/client.js';
import { LeaseWriter, type HeldLease } from '../store/leases.js';
import type { Store, SubnetRecord } from '../store/store.js';
import { acquireLease, OutOfSubnetsError, type AcquireDeps, type AcquireResult } from './acquire.js';
import type { AgentMetrics } from './metrics.js';
import { publishedLease } from './publish.js';
import type { Selection } from './iface.js';
import { Backoff, RETRY } from '../backoff.js';
import type { Timers } from './timers.js';

export interface LeaseKeeperDeps {
  store: Store;
  network: string;
  nodeName: string;
  renewMarginMs: number;
  log: Logger;
  metrics: AgentMetrics;
  timers: Timers;
  now: () => number;
  random?: () => number;
  /** The network config as it is now (a reload can change the TTL and range). */
  config: () => NetworkConfig;
  selection: Selection;
  /** Runs an etcd operation until done (retrying outages); undefined when the agent stopped. */
  untilDone: <T>(operation: 'acquire', op: () => Promise<T | undefined>) => Promise<T | undefined>;
  /** A lease was acquired (the first, or another after a loss). */
  onAcquired: (result: AcquireResult, before: HeldLease | undefined) => void;
  /** No subnet is free; acquisition goes on retrying. */
  onOutOfSubnets: (message: string) => void;
}

/** Log fields for a key's subnets: `subnet` (IPv4) as always, `ipv6Subnet` beside it. */
export function subnetFields(k: LeaseKey): Record<string, string> {
  return {
    ...(k.ipv4 ? { subnet: k.ipv4.toString() } : {}),
    ...(k.ipv6 ? { ipv6Subnet: k.ipv6.toString() } : {}),
  };
}

export class LeaseKeeper {
  private current: HeldLease | undefined;
  private value: LeaseValue | undefined;
  private readonly vtepMACs: { 4?: string | undefined; 6?: string | undefined } = {};
  private readonly writer: LeaseWriter;
  private queue: Promise<void> = Promise.resolve();
  private renewalTimer: NodeJS.Timeout | undefined;
  private readonly renewBackoff = new Backoff(RETRY.etcd);
  private reacquiring = false;
  /** Takeovers by an agent with our node name so far: each waits longer (never reset: clones stay slow). */
  private readonly takeovers = new Backoff(RETRY.takeover);
  private stopped = false;

  constructor(private readonly d: LeaseKeeperDeps) {
    this.writer = new LeaseWriter(d.store, d.network, d.now);
  }

  get held(): HeldLease | undefined {
    return this.current;
  }

  /** Each stack's VTEP MAC as its device has it now; the published value follows. */
  setVtepMAC(family: 4 | 6, mac: string | undefined): void {
    this.vtepMACs[family] = mac;
    this.value = this.publishedValue();
  }

  vtepMAC(family: 4 | 6): string | undefined {
    return this.vtepMACs[family];
  }

  stop(): void {
    this.stopped = true;
  }

  private serialize(op: () => Promise<void>): Promise<void> {
    const next = this.queue.then(op, op);
    this.queue = next.catch(() => {});
    return next;
  }

  private publishedValue(): LeaseValue {
    return publishedLease({ config: this.d.config(), selection: this.d.selection, nodeName: this.d.nodeName, vtepMAC: this.vtepMACs[4], vtepMACv6: this.vtepMACs[6] });
  }

  /** Acquires a lease (preferring `previous`, the subnets of the last subnet.env); retries until done or stopped. */
  /**
   * `firstListing`: a listing already under way, for the first attempt; `onPlanned`: told
   * the first attempt's plan before its write (acquire.ts).
   */
  acquire(previous: LeaseKey | undefined, firstListing?: AcquireDeps['firstListing'], onPlanned?: AcquireDeps['onPlanned']): Promise<void> {
    return this.serialize(async () => {
      const before = this.current;
      this.value ??= this.publishedValue();
      const result = await this.d.untilDone('acquire', async () => {
        try {
          return await acquireLease({
            store: this.d.store,
            writer: this.writer,
            config: this.d.config(),
            identity: { nodeName: this.d.nodeName, publicIP: this.d.selection.publicIP, publicIPv6: this.d.selection.publicIPv6 },
            leaseValue: this.value!,
            previous,
            firstListing,
            // Told once: a retry (after an etcd outage, or out of subnets) is told its plan only
            // when no attempt got as far as one before.
            onPlanned: onPlanned && ((planned, listing) => {
              const tell = onPlanned;
              onPlanned = undefined;
              tell?.(planned, listing);
            }),
            logger: this.d.log,
            ...(this.d.random ? { random: this.d.random } : {}),
          });
        } catch (err) {
          if (err instanceof OutOfSubnetsError) {
            this.d.onOutOfSubnets(`${err.message}; retrying until a subnet frees up`);
            return undefined;
          }
          throw err;
        } finally {
          firstListing = undefined; // a retry lists afresh
        }
      });
      if (!result) return;
      this.current = result.held;
      this.d.metrics.leaseAcquired(result.kind);
      this.d.log.info('lease acquired', {
        key: result.held.key,
        ...subnetFields(result.held.subnets),
        how: result.how,
        reservation: result.held.reserved,
        ...(result.held.reserved ? {} : { expires: isoTime(result.held.expiresAt) }),
        attempts: result.attempts,
        ...(before && before.key !== result.held.key ? { previous: describeLeaseKey(before.subnets) } : {}),
      });
      this.scheduleRenewal();
      this.d.onAcquired(result, before);
    });
  }

  /** Renews at `delay` ms from now, or (by default) a margin before the lease expires. */
  scheduleRenewal(delay?: number): void {
    this.d.timers.cancel(this.renewalTimer);
    this.renewalTimer = undefined;
    const held = this.current;
    if (!held || held.reserved || this.stopped) return;
    const ttl = this.d.config().leaseTTLms;
    const margin = Math.min(this.d.renewMarginMs, ttl / 2);
    const at = delay ?? Math.max(0, held.expiresAt - margin - this.d.now());
    this.renewalTimer = this.d.timers.after(at, () => void this.renew());
  }

  private renew(): Promise<void> {
    return this.serialize(async () => {
      const held = this.current;
      if (!held || held.reserved || this.stopped) return;
      try {
        const out = await this.writer.renew(held.subnets, held.modRevision, this.value!, this.d.config().leaseTTLms);
        const attempts = this.renewBackoff.failures + 1;
        this.renewBackoff.reset();
        this.d.metrics.leaseRenewed(out.ok);
        if (out.ok) {
          this.current = out.held;
          this.d.log.info('lease renewed', { key: held.key, expires: isoTime(out.held.expiresAt), ...(attempts > 1 ? { attempts } : {}) });
          this.scheduleRenewal();
        } else {
          this.lost(held, `lease was changed or removed by someone else; re-acquiring`, { reason: out.reason });
        }
      } catch (err) {
        // Whatever the error, renewing goes on: thrown from here it would end in the timer's
        // unobserved promise, no renewal would ever be scheduled again, and the lease would
        // expire under a running agent (every peer then drops this host's routes).
        const transient = isTransientStoreError(err);
        this.d.metrics.leaseRenewed(false);
        if (transient) this.d.metrics.etcdError('renew');
        if (this.renewBackoff.failures === 0) {
          const fields = { key: held.key, err: (err as Error).message };
          if (transient) this.d.log.warn('lease renewal failed; retrying with backoff', fields);
          else this.d.log.error('lease renewal failed unexpectedly; retrying with backoff', fields);
        }
        this.scheduleRenewal(this.renewBackoff.next());
      }
    });
  }

  /**
   * Our key as the lease watch has it now (undefined: deleted). Checked whenever it changes:
   * is it still ours?
   */
  check(record: SubnetRecord | undefined): void {
    const held = this.current;
    if (!held || this.stopped) return;
    // Our own write may be seen before the call that made it returns (a republished MAC).
    if (record && record.kv.value !== held.value && this.value && record.kv.value === encodeLease(this.value)) {
      held.value = record.kv.value;
    }
    if (record && record.kv.value === held.value) {
      if (record.kv.modRevision > held.modRevision) held.modRevision = record.kv.modRevision;
      if (record.reserved !== held.reserved) this.followReservationChange(record.reserved);
      return;
    }
    if (this.reacquiring) return;
    const taker = record?.lease.ok ? record.lease.value : undefined;
    if (taker?.nodeName === this.d.nodeName) {
      // Another agent runs with our node name (a cloned VM), or someone forged our key.
      // Taking it back at once would make two clones trade one subnet forever; exiting would
      // turn one forged key into a restart loop. So back off (growing, up to 5 minutes), then
      // re-check and re-acquire: a forged key is taken back, clones trade ever more slowly.
      const delay = this.takeovers.next();
      this.reacquiring = true;
      this.d.metrics.leaseLost();
      this.d.log.warn('another agent with our node name took over our lease; node names must be unique. Re-checking after a back-off', {
        key: held.key,
        takerPublicIP: taker.publicIP,
        retryInSeconds: Math.round(delay / 1000),
      });
      this.d.timers.after(delay, () => void this.acquire(held.subnets).finally(() => (this.reacquiring = false)));
      return;
    }
    this.lost(held, record ? 'our lease was overwritten; re-acquiring' : 'our lease was deleted; re-acquiring');
  }

  /** The subnet no longer fits the network's range (a config reload): acquire another. */
  giveUp(): void {
    const held = this.current;
    if (!held) return;
    this.d.log.warn('our subnet is outside the network range now; giving it up for a new one', { key: held.key, ...subnetFields(held.subnets) });
    void this.acquire(undefined);
  }

  /** Logged and counted once per loss, however it was noticed (a failed renewal, the watch). */
  private lost(held: HeldLease, message: string, fields: Record<string, unknown> = {}): void {
    if (this.reacquiring) return;
    this.reacquiring = true;
    this.d.metrics.leaseLost();
    this.d.log.warn(message, { key: held.key, ...fields });
    void this.acquire(held.subnets).finally(() => (this.reacquiring = false));
  }

  /**
   * An operator turned our lease into a reservation (`weft apply` of a Subnet for this node
   * detaches the etcd lease and keeps the value): stop renewing, or the next renewal would
   * attach a TTL again. The reverse (a TTL attached to our reservation) is renewed at once so
   * that the lease is one we keep alive.
   */
  private followReservationChange(reserved: boolean): void {
    const held = this.current!;
    held.reserved = reserved;
    if (reserved) {
      held.leaseId = '0';
      held.expiresAt = Infinity;
      this.d.log.info('our lease is now a reservation; renewals stop', { key: held.key });
      this.scheduleRenewal();
    } else {
      this.d.log.warn('our reservation now has an etcd lease attached; renewing it as a lease', { key: held.key });
      this.scheduleRenewal(0);
    }
  }

  /**
   * A stack's vxlan device was recreated with a new MAC: publish it (BackendData or
   * BackendV6Data). Throws when it could not be written; the next reconcile tries again.
   */
  republish(family: 4 | 6, vtepMAC: string): Promise<void> {
    return this.serialize(async () => {
      const held = this.current;
      if (!held || this.vtepMACs[family] === vtepMAC) return;
      const previous = this.vtepMACs[family];
      this.setVtepMAC(family, vtepMAC);
      let out;
      try {
        out = held.reserved
          ? await this.writer.adopt(held.subnets, held.modRevision, held.value, this.value!)
          : await this.writer.renew(held.subnets, held.modRevision, this.value!, this.d.config().leaseTTLms);
      } catch (err) {
        // Not published: the next reconcile sees the device's MAC differ again and retries.
        this.setVtepMAC(family, previous);
        throw err;
      }
      if (out.ok) {
        this.current = out.held;
        this.scheduleRenewal();
        this.d.log.info('published new VTEP MAC', { key: out.held.key, family, vtepMAC });
      } else {
        void this.acquire(held.subnets);
      }
    });
  }
}
