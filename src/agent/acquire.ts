// Acquiring a lease: list, plan (pure), write with one CAS; on a lost race, list again.
// With IPv6, a new key is confirmed by one more listing (see olderOverlap).
import { namedError } from '../api/errors.js';
import type { LeaseKey, LeaseValue } from '../api/lease.js';
import { describeRanges, type NetworkConfig } from '../api/network.js';
import type { Logger } from '../log.js';
import type { HeldLease, LeaseWriter } from '../store/leases.js';
import type { Store, SubnetRecord } from '../store/store.js';
import { olderOverlap, planAcquisition, type AcquisitionPlan, type Identity } from './acquire-plan.js';
import { Backoff, RETRY } from '../backoff.js';

export class OutOfSubnetsError extends namedError('OutOfSubnetsError') {}

export class ContentionError extends namedError('ContentionError') {}

export interface AcquireDeps {
  store: Store;
  writer: LeaseWriter;
  config: NetworkConfig;
  identity: Identity;
  /** The value to publish; the subnets are the key, so it is the same for any subnets. */
  leaseValue: LeaseValue;
  /** The subnets in the previous subnet.env. */
  previous?: LeaseKey | undefined;
  logger: Logger;
  random?: () => number;
  sleep?: (ms: number) => Promise<void>;
  maxAttempts?: number;
  /**
   * A listing of the network's subnets already under way (the agent starts one at start-up,
   * beside its other reads): the first attempt uses it instead of listing again. Undefined
   * (or a listing that failed) lists as usual.
   */
  firstListing?: Promise<{ records: SubnetRecord[]; revision: number } | undefined> | undefined;
  /**
   * Told once, on the first attempt, which key and subnets the plan wants and the listing it
   * was made from, before the write: the agent programs its peers from that listing while the
   * transaction is in flight (the peers depend on our subnets only to leave ours out). The
   * write that follows is of exactly that plan; if it loses a race, a later attempt's key may
   * differ, and the result says which key is ours.
   */
  onPlanned?: ((planned: PlannedLease, listing: { records: SubnetRecord[]; revision: number }) => void) | undefined;
}

/** The key and subnets an acquisition is about to write (or keep). */
export interface PlannedLease {
  key: string;
  subnets: LeaseKey;
}

/** How a lease was obtained, in one word (a metric label); `how` says it in words. */
export type AcquisitionKind = 'reservation' | 'existing' | 'previous' | 'new';

export interface AcquireResult {
  held: HeldLease;
  /** The last listing the decision was made from (before our own write, or the confirming one after it). */
  listing: { records: SubnetRecord[]; revision: number };
  /** 1 when the first CAS won. */
  attempts: number;
  how: string;
  kind: AcquisitionKind;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function acquireLease(deps: AcquireDeps): Promise<AcquireResult> {
  const { store, writer, config, identity, leaseValue, logger } = deps;
  const random = deps.random ?? Math.random;
  const sleep = deps.sleep ?? defaultSleep;
  const maxAttempts = deps.maxAttempts ?? 25;
  const backoff = new Backoff(RETRY.contention);

  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const early = attempt === 1 && deps.firstListing ? await deps.firstListing : undefined;
    const { records, revision } = early ?? (await store.listSubnets(config.name));
    const plan = planAcquisition(config, records, identity, deps.previous, random);
    if (attempt === 1 && deps.onPlanned) {
      const planned = plannedLease(plan, (subnets) => writer.keyOf(subnets));
      if (planned) deps.onPlanned(planned, { records, revision });
    }

    for (const r of plan.release) {
      const why = r.subnets ? `it does not fit network ${describeRanges(config)}` : 'its key does not parse';
      logger.warn('releasing a lease of this node', { key: r.kv.key, reason: plan.action === 'adopt-reservation' ? 'a reservation exists for this node' : why });
      await writer.release(r.kv.key, r.kv.modRevision);
    }

    let outcome;
    let how: string;
    let kind: AcquisitionKind;
    switch (plan.action) {
      case 'full':
        throw new OutOfSubnetsError(outOfSubnets(config, plan.stacks));
      case 'adopt-reservation':
        how = 'adopted reservation';
        kind = 'reservation';
        outcome = await writer.adopt(plan.record.subnets!, plan.record.kv.modRevision, plan.record.kv.value, leaseValue);
        break;
      case 'reuse':
        how = `reused lease (matched by ${plan.matchedBy})`;
        kind = 'existing';
        outcome = await writer.renew(plan.record.subnets!, plan.record.kv.modRevision, leaseValue, config.leaseTTLms);
        break;
      case 'create':
        how = plan.source === 'previous' ? 'reclaimed subnet from subnet file' : 'allocated new subnet';
        kind = plan.source === 'previous' ? 'previous' : 'new';
        outcome = await writer.create(plan.subnets, leaseValue, config.leaseTTLms);
        break;
    }
    if (outcome.ok && plan.action === 'create' && config.ipv6) {
      // The create transaction guards the key and its IPv4 half; an IPv6 half is confirmed
      // here: if an older key overlaps it (another host picked the same one a moment
      // earlier), ours gives way and this host picks again.
      const after = await store.listSubnets(config.name);
      const held = outcome.held;
      const older = olderOverlap(config, after.records, { key: held.key, subnets: held.subnets, createRevision: held.modRevision });
      if (!older) return { held, attempts: attempt, how, kind, listing: after };
      logger.debug('another host took an overlapping subnet first; picking again', { key: held.key, older: older.kv.key });
      await writer.release(held.key, held.modRevision);
    } else if (outcome.ok) {
      return { held: outcome.held, attempts: attempt, how, kind, listing: { records, revision } };
    }
    // Lost a race: someone wrote the key between our list and our CAS. Spread the retries.
    await sleep(backoff.next());
  }
  throw new ContentionError(`could not acquire a subnet after ${maxAttempts} attempts (heavy contention)`);
}

/** The key a plan will hold if its write wins; undefined when there is none (out of subnets). */
export function plannedLease(plan: AcquisitionPlan, keyOf: (subnets: LeaseKey) => string): PlannedLease | undefined {
  switch (plan.action) {
    case 'adopt-reservation':
    case 'reuse':
      // As the write will name it (HeldLease.key).
      return plan.record.subnets ? { key: keyOf(plan.record.subnets), subnets: plan.record.subnets } : undefined;
    case 'create':
      return { key: keyOf(plan.subnets), subnets: plan.subnets };
    case 'full':
      return undefined;
  }
}

function outOfSubnets(config: NetworkConfig, stacks: string[]): string {
  const parts: string[] = [];
  if (config.ipv4 && stacks.includes('IPv4')) {
    const s = config.ipv4;
    parts.push(`every /${s.subnetLen} between ${s.subnetMin} and ${s.subnetMax} in ${s.network} is taken`);
  }
  if (config.ipv6 && stacks.includes('IPv6')) {
    const s = config.ipv6;
    parts.push(`every IPv6 /${s.subnetLen} between ${s.subnetMin} and ${s.subnetMax} in ${s.network} is taken`);
  }
  return `out of subnets: ${parts.join('; ')}`;
}
