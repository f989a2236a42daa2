// The agent's node status key: one put under a short etcd lease of its own, so a dead agent's
// record vanishes within the TTL and a stopped one's at once (revoke). It never touches the
// subnet lease: losing this one only costs a republish.
//
// Keepalives are single calls driven by the publisher (every TTL/3, skipped while etcd is
// known to be away), not etcd3's automatic loop, which retries every 100 ms during an outage
// (about 300 attempts and 1 s of CPU in 30 s, measured here).
import type { Lease } from 'etcd3';
import { etcd3IfLoaded } from './etcd3-module.js';
import { StoreUnavailableError } from './errors.js';
import type { Store } from './store.js';

export const NODE_STATUS_TTL_SECONDS = 30;

export class NodeStatusWriter {
  private lease: Lease | undefined;
  private lostHandler: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    readonly key: string,
    readonly ttlSeconds: number = NODE_STATUS_TTL_SECONDS,
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

  /**
   * Refreshes the etcd lease once. A lease etcd no longer knows fires the lost handler (and
   * resolves); an unreachable etcd throws, within timeoutMs even when etcd is frozen.
   */
  async keepAlive(timeoutMs = 5000): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    const attempt = lease.keepaliveOnce();
    attempt.catch(() => {}); // settled later, when a frozen etcd's connection is dropped
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`etcd did not answer a lease keepalive within ${timeoutMs} ms`, this.store.endpoints)), timeoutMs);
    });
    try {
      await this.store.call(() => Promise.race([attempt, timeout]));
    } catch (err) {
      // etcd3 emitted `lost` already (expired or revoked): the handler asks for a new put.
      const etcd3 = etcd3IfLoaded();
      if (etcd3 && err instanceof etcd3.EtcdLeaseInvalidError) return;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Revokes the etcd lease, which deletes the record at once. */
  async revoke(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    if (lease) await this.store.call(() => lease.revoke());
  }

  /** Forgets the etcd lease without revoking it: the record expires at its TTL (a crash, in tests). */
  abandon(): void {
    this.lease?.release();
    this.lease = undefined;
  }

  private newLease(): Lease {
    // A lost lease object is dead (trap 5 in the library notes): forget it and let the next
    // put grant a fresh one.
    const lease = this.store.client.lease(this.ttlSeconds, { autoKeepAlive: false });
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
