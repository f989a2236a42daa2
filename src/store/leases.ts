// The agent's writes: creating, renewing, adopting and releasing one subnet key. Each is a
// single compare-and-swap transaction, so two hosts can never both believe they hold a key.
import { Cidr } from '../alloc/cidr.js';
import { encodeLease, type LeaseValue } from '../api/lease.js';
import type { Store } from './store.js';

export interface HeldLease {
  network: string;
  subnet: Cidr;
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
    const res = await this.store.call(() =>
      this.store.client.leaseClient.leaseGrant({ TTL: Math.max(1, Math.round(ttlMs / 1000)), ID: 0 }),
    );
    return { id: String(res.ID), expiresAt: start + Number(res.TTL) * 1000 };
  }

  private async revokeQuietly(id: string): Promise<void> {
    try {
      await this.store.client.leaseClient.leaseRevoke({ ID: id });
    } catch {
      // An unused lease expires by itself; nothing is attached to it.
    }
  }

  /**
   * etcd3 retries writes on transient errors, so a CAS that committed can still report
   * failure (its reply was lost). Re-read: if the key now holds exactly what we wrote, we won.
   */
  private async confirm(key: string, value: string, leaseId: string): Promise<number | undefined> {
    const kv = await this.store.get(key);
    return kv && kv.value === value && kv.leaseId === leaseId ? kv.modRevision : undefined;
  }

  private held(subnet: Cidr, value: string, modRevision: number, leaseId: string, expiresAt: number): HeldLease {
    return {
      network: this.network,
      subnet,
      key: this.store.layout.subnetKey(this.network, subnet.toKey()),
      value,
      modRevision,
      leaseId,
      reserved: leaseId === '0',
      expiresAt,
    };
  }

  /** Creates the key only if no one holds it (Flannel's CAS: Version == 0). */
  async create(subnet: Cidr, lease: LeaseValue, ttlMs: number): Promise<WriteOutcome> {
    const key = this.store.layout.subnetKey(this.network, subnet.toKey());
    const value = encodeLease(lease);
    const { id, expiresAt } = await this.grant(ttlMs);
    const c = this.store.client;
    const res = await this.store.call(() =>
      c.if(key, 'Version', '==', 0).then(c.put(key).value(value).lease(id)).commit(),
    );
    if (res.succeeded) {
      return { ok: true, held: this.held(subnet, value, Number(res.header.revision), id, expiresAt) };
    }
    const rev = await this.confirm(key, value, id);
    if (rev !== undefined) return { ok: true, held: this.held(subnet, value, rev, id, expiresAt) };
    await this.revokeQuietly(id);
    return { ok: false, reason: 'exists' };
  }

  /**
   * Re-puts an existing key of ours (after restart, or to renew) under a fresh etcd lease,
   * only if it is still the revision we saw. Like flanneld: grant, then put.
   */
  async renew(subnet: Cidr, expectedModRevision: number, lease: LeaseValue, ttlMs: number): Promise<WriteOutcome> {
    const key = this.store.layout.subnetKey(this.network, subnet.toKey());
    const value = encodeLease(lease);
    const { id, expiresAt } = await this.grant(ttlMs);
    const c = this.store.client;
    const res = await this.store.call(() =>
      c.if(key, 'Mod', '==', expectedModRevision).then(c.put(key).value(value).lease(id)).commit(),
    );
    if (res.succeeded) {
      return { ok: true, held: this.held(subnet, value, Number(res.header.revision), id, expiresAt) };
    }
    const rev = await this.confirm(key, value, id);
    if (rev !== undefined) return { ok: true, held: this.held(subnet, value, rev, id, expiresAt) };
    await this.revokeQuietly(id);
    const now = await this.store.get(key);
    return { ok: false, reason: now ? 'changed' : 'gone' };
  }

  /**
   * Takes over a reservation: rewrites its value with our backend data and keeps it a
   * reservation (no etcd lease, so it never expires: the fix for flannel's open bug).
   */
  async adopt(subnet: Cidr, expectedModRevision: number, currentValue: string, lease: LeaseValue): Promise<WriteOutcome> {
    const key = this.store.layout.subnetKey(this.network, subnet.toKey());
    const value = encodeLease(lease);
    if (value === currentValue) {
      return { ok: true, held: this.held(subnet, value, expectedModRevision, '0', Infinity) };
    }
    const c = this.store.client;
    const res = await this.store.call(() =>
      c.if(key, 'Mod', '==', expectedModRevision).then(c.put(key).value(value)).commit(),
    );
    if (res.succeeded) {
      return { ok: true, held: this.held(subnet, value, Number(res.header.revision), '0', Infinity) };
    }
    const rev = await this.confirm(key, value, '0');
    if (rev !== undefined) return { ok: true, held: this.held(subnet, value, rev, '0', Infinity) };
    return { ok: false, reason: (await this.store.get(key)) ? 'changed' : 'gone' };
  }

  /** Deletes a key of ours, only if unchanged since we read it. */
  async release(key: string, expectedModRevision: number): Promise<boolean> {
    const c = this.store.client;
    const res = await this.store.call(() => c.if(key, 'Mod', '==', expectedModRevision).then(c.delete().key(key)).commit());
    return res.succeeded;
  }
}

export function subnetOfKey(store: Store, network: string, key: string): Cidr | undefined {
  const prefix = store.layout.subnetsPrefix(network);
  return key.startsWith(prefix) ? Cidr.fromKey(key.slice(prefix.length)) : undefined;
}
