// A call refused by the client's open circuit breaker means etcd is away, like any other failed
// call: it must be reported as transient, or its caller gives up for good. This is how `make
// soak` lost pings: an agent's lease renewal during an etcd restart had every attempt refused
// by the breaker (other calls kept re-opening it), the error was not seen as transient, the
// renewal was never retried, and when the lease expired every peer dropped the host's routes
// until the agent noticed and took its subnet again.
import { BrokenCircuitError, IsolatedCircuitError, isBrokenCircuitError } from 'cockatiel';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { classifyEtcdError, isTransientStoreError } from '../../src/store/client.js';
import { LeaseWriter, type HeldLease } from '../../src/store/leases.js';
import { Store } from '../../src/store/store.js';
import { valueFor } from '../helpers/acquirers.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

describe('errors from the client circuit breaker', () => {
  it('classifies a refusal by an open or isolated breaker as etcd being unavailable', () => {
    for (const err of [new BrokenCircuitError(), new IsolatedCircuitError()]) {
      const classified = classifyEtcdError(err, ['http://127.0.0.1:2379']);
      expect(classified).toBeInstanceOf(StoreUnavailableError);
      expect(isTransientStoreError(classified)).toBe(true);
      expect(classified.message).toMatch(/^etcd is unreachable \(tried http:\/\/127\.0\.0\.1:2379\): .*circuit breaker/);
    }
  });
});

describe('a lease renewal while etcd is away', () => {
  let etcd: EtcdServer;
  let store: Store;
  let writer: LeaseWriter;
  let held: HeldLease;
  const value = valueFor(7);
  const subnets = { ipv4: Cidr.parse('10.5.7.0/24')! };

  beforeAll(async () => {
    etcd = await startEtcd();
    // No retries: each call is one attempt, so the breaker's state decides each outcome.
    store = Store.connect({ endpoints: [etcd.endpoint], maxAttempts: 0 });
    writer = new LeaseWriter(store, 'default');
    const created = await writer.create(subnets, value, 20_000);
    if (!created.ok) throw new Error(`could not create the lease: ${created.reason}`);
    held = created.held;
  });
  afterAll(async () => {
    store?.close();
    await etcd?.stop();
  });

  it('fails as transient when the breaker refuses it, and succeeds once etcd is back', async () => {
    await etcd.stop({ keepData: true });
    // Three refused connections open the host's breaker; a call within the next second is
    // refused by the breaker without reaching the network. Repeat until that is what happened
    // (a pause of over a second on a busy machine would let the call through to a refused
    // connection instead, which was always classified as transient).
    let refusedByBreaker: unknown;
    for (let attempt = 0; attempt < 10 && refusedByBreaker === undefined; attempt++) {
      for (let i = 0; i < 3; i++) {
        const opening = await store.get(held.key).catch((e: unknown) => e);
        expect(isTransientStoreError(opening)).toBe(true);
      }
      const err = await writer.renew(held.subnets, held.modRevision, value, 20_000).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeDefined();
      const cause = err instanceof StoreUnavailableError ? err.cause : err;
      if (isBrokenCircuitError(cause)) refusedByBreaker = err;
    }
    expect(refusedByBreaker, 'a renewal refused by the open breaker').toBeDefined();
    // The agent retries a transient renewal failure with backoff; anything else ended its renewals.
    expect(isTransientStoreError(refusedByBreaker)).toBe(true);

    await etcd.restart();
    const renewed = await waitFor(
      async () => {
        const out = await writer.renew(held.subnets, held.modRevision, value, 20_000).catch((e: unknown) => {
          if (!isTransientStoreError(e)) throw e;
          return undefined;
        });
        return out;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: 'the renewal to succeed once etcd is back' },
    );
    expect(renewed.ok).toBe(true);
  });
});
