// The agent's node status key: one put under a short etcd lease of its own (kept alive by the
// client), so a dead agent's record vanishes within the TTL and a stopped one's at once
// (revoke). It never touches the subnet lease: losing this one only costs a republish.
import type { Lease } from 'etcd3';
import type { Store } from './store.js';

export const NODE_STATUS_TTL_SECONDS = 30;

export class NodeStatusWriter {
  private lease: Lease | undefined;
  private lostHandler: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    readonly key: string,
    private readonly ttlSeconds: number = NODE_STATUS_TTL_SECONDS,
  ) {}

  /** Called when the etcd lease is lost (expired, revoked by someone): the record needs a new put. */
  onLost(handler: () => void): void {
    this.lostHandler = handler;
  }

  /** Writes the record, under the current etcd lease or (none yet, or lost) a new one. */
  async put(value: string): Promise<void> {
    const lease = this.lease ?? this.newLease();
    await this.store.call(() => lease.put(this.key).value(value).exec());
  }

  /** Revokes the etcd lease, which deletes the record at once. */
  async revoke(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await this.store.call(() => lease.revoke());
  }

  /** Stops keeping the lease alive without revoking it: the record expires at its TTL (a crash, in tests). */
  abandon(): void {
    this.lease?.release();
    this.lease = undefined;
  }

  /** The etcd lease id the record is attached to, once granted. */
  async leaseId(): Promise<string | undefined> {
    return this.lease ? String(await this.lease.grant()) : undefined;
  }

  private newLease(): Lease {
    // etcd3 keeps it alive every TTL/3 and fires `lost` once it cannot any more (trap 5 in
    // the library notes): a lost lease object is dead, so forget it and let the next put
    // grant a fresh one.
    const lease = this.store.client.lease(this.ttlSeconds);
    lease.on('lost', () => {
      if (this.lease !== lease) return;
      this.lease = undefined;
      try {
        this.lostHandler?.();
      } catch {
        // A listener that throws would crash the process from inside etcd3.
      }
    });
    this.lease = lease;
    return lease;
  }
}
