// The agent's writes: creating, renewing, adopting and releasing one subnet key. Each is a
// single compare-and-swap transaction, so two hosts can never both believe they hold a key.
// A dual-stack key names both of a host's subnets, so they are created in one transaction.
import { encodeLease, formatLeaseKey, type LeaseKey, type LeaseValue } from '../api/lease.js';
import type { Store } from './store.js';
import type { Compare } from './txn.js';

export interface HeldLease {
  network: string;
  /** The subnets the key names (ipv4 absent for an IPv6-only key). */
  subnets: LeaseKey;
  key: string;
  /** The exact bytes we wrote. */
  value: string;
  modRevision: number;
  /** "0" for a reservation. */
  leaseId: string;
  reserved: boolean;
  /** Wall-clock ms when the etcd lease expires (Infinity for a reservation). */
  expiresAt: number;
}

export type WriteOutcome = { ok: true; held: HeldLease } | { ok: false; reason: 'exists' | 'changed' | 'gone' };

export class LeaseWriter {
  constructor(
    private readonly store: Store,
    private readonly network: string,
    private readonly now: () => number = Date.now,
  ) {}

  private async grant(ttlMs: number): Promise<{ id: string; expiresAt: number }> {
    const start = this.now();
    const { id, ttl } = await this.store.grantLease(Math.max(1, Math.round(ttlMs / 1000)));
    return { id, expiresAt: start + ttl * 1000 };
  }

  private async revokeQuietly(id: string): Promise<void> {
    try {
      await this.store.revokeLease(id);
    } catch {
      // An unused lease expires by itself; nothing is attached to it.
    }
  }

  /**
   * A write is repeated on transient errors (by etcd3's retries, or through etcd3 after the
   * direct client failed: store.ts), so a CAS that committed can still report failure (its
   * reply was lost). Re-read: if the key now holds exactly what we wrote, we won.
   */
  private async confirm(key: string, value: string, leaseId: string): Promise<number | undefined> {
    const kv = await this.store.get(key);
    return kv && kv.value === value && kv.leaseId === leaseId ? kv.modRevision : undefined;
  }

  /** The etcd key a lease of these subnets has. */
  keyOf(subnets: LeaseKey): string {
    return this.store.layout.subnetKey(this.network, formatLeaseKey(subnets));
  }

  private held(subnets: LeaseKey, value: string, modRevision: number, leaseId: string, expiresAt: number): HeldLease {
    return {
      network: this.network,
      subnets,
      key: this.keyOf(subnets),
      value,
      modRevision,
      leaseId,
      reserved: leaseId === '0',
      expiresAt,
    };
  }

  /**
   * What must be absent for a new key to be ours alone. Flannel's CAS is Version(key) == 0.
   * A dual-stack key also requires that no other key holds its IPv4 subnet, in the IPv4-only
   * form ("10.5.3.0-24") or paired with any IPv6 subnet (the range "10.5.3.0-24&..."), so two
   * hosts racing for one IPv4 subnet with different IPv6 ones cannot both win. (An IPv6 half
   * is a key's suffix, which no range can select: acquire.ts checks it after the write.)
   */
  private creationGuards(subnets: LeaseKey, key: string): Compare[] {
    const guards: Compare[] = [{ key, absent: true }];
    if (subnets.ipv4 && subnets.ipv6) {
      const v4 = this.keyOf({ ipv4: subnets.ipv4 });
      guards.push({ key: v4, absent: true }, { prefix: `${v4}&`, empty: true });
    }
    return guards;
  }

  /** Creates the key only if no one holds it (and, dual-stack, no one holds its IPv4 half). */
  async create(subnets: LeaseKey, lease: LeaseValue, ttlMs: number): Promise<WriteOutcome> {
    const key = this.keyOf(subnets);
    const value = encodeLease(lease);
    const { id, expiresAt } = await this.grant(ttlMs);
    const res = await this.store.txn(this.creationGuards(subnets, key), [{ put: key, value, lease: id }]);
    if (res.succeeded) {
      return { ok: true, held: this.held(subnets, value, res.revision, id, expiresAt) };
    }
    const rev = await this.confirm(key, value, id);
    if (rev !== undefined) return { ok: true, held: this.held(subnets, value, rev, id, expiresAt) };
    await this.revokeQuietly(id);
    return { ok: false, reason: 'exists' };
  }

  /**
   * Re-puts an existing key of ours (after restart, or to renew) under a fresh etcd lease,
   * only if it is still the revision we saw. Like flanneld: grant, then put.
   */
  async renew(subnets: LeaseKey, expectedModRevision: number, lease: LeaseValue, ttlMs: number): Promise<WriteOutcome> {
    const key = this.keyOf(subnets);
    const value = encodeLease(lease);
    const { id, expiresAt } = await this.grant(ttlMs);
    const res = await this.store.txn([{ key, modRevision: expectedModRevision }], [{ put: key, value, lease: id }]);
    if (res.succeeded) {
      return { ok: true, held: this.held(subnets, value, res.revision, id, expiresAt) };
    }
    const rev = await this.confirm(key, value, id);
    if (rev !== undefined) return { ok: true, held: this.held(subnets, value, rev, id, expiresAt) };
    await this.revokeQuietly(id);
    const now = await this.store.get(key);
    return { ok: false, reason: now ? 'changed' : 'gone' };
  }

  /**
   * Takes over a reservation: rewrites its value with our backend data and keeps it a
   * reservation (no etcd lease, so it never expires: the fix for flannel's open bug).
   */
  async adopt(subnets: LeaseKey, expectedModRevision: number, currentValue: string, lease: LeaseValue): Promise<WriteOutcome> {
    const key = this.keyOf(subnets);
    const value = encodeLease(lease);
    if (value === currentValue) {
      return { ok: true, held: this.held(subnets, value, expectedModRevision, '0', Infinity) };
    }
    const res = await this.store.txn([{ key, modRevision: expectedModRevision }], [{ put: key, value }]);
    if (res.succeeded) {
      return { ok: true, held: this.held(subnets, value, res.revision, '0', Infinity) };
    }
    const rev = await this.confirm(key, value, '0');
    if (rev !== undefined) return { ok: true, held: this.held(subnets, value, rev, '0', Infinity) };
    return { ok: false, reason: (await this.store.get(key)) ? 'changed' : 'gone' };
  }

  /** Deletes a key of ours, only if unchanged since we read it. */
  async release(key: string, expectedModRevision: number): Promise<boolean> {
    return this.store.commit([{ key, modRevision: expectedModRevision }], [{ delete: key }]);
  }
}
