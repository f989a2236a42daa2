// The store's direct client (src/store/direct-kv.ts) against a real etcd: reads, transactions
// and etcd leases without etcd3 at all; a failed connection handing that call and every later
// one to etcd3; an error status from etcd reported by etcd3, typed, with the direct client
// kept; a user's token, and a wrong password reported as etcd3 reports it.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createEtcdClient } from '../../src/store/client.js';
import { DirectKv } from '../../src/store/direct-kv.js';
import { StoreAuthError } from '../../src/store/errors.js';
import type { RangeRequest } from '../../src/store/kv-codec.js';
import { Store } from '../../src/store/store.js';
import type { Compare, TxnOp } from '../../src/store/txn.js';
import { useEtcd, useEtcdWithUser } from '../helpers/etcd.js';

const PREFIX = `/weft-direct-${process.pid}`;

/** A direct client that counts the calls it was given. */
class CountingDirect extends DirectKv {
  calls = 0;
  override range(req: RangeRequest) {
    this.calls++;
    return super.range(req);
  }
  override txn(...args: Parameters<DirectKv['txn']>) {
    this.calls++;
    return super.txn(...args);
  }
}

/** Whether the store has made its etcd3 client (it makes it on first use only). */
function madeEtcd3(store: Store): boolean {
  return (store as unknown as { etcd?: unknown }).etcd !== undefined;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('a store with the direct client', () => {
  const fx = useEtcd('direct');

  it('reads, commits, grants and revokes etcd leases without ever making an etcd3 client', async () => {
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix: `${PREFIX}/a`, direct: true });
    try {
      const net = `${PREFIX}/a`;
      const key = `${net}/subnets/10.5.1.0-24`;
      const { id, ttl } = await store.grantLease(60);
      expect(ttl).toBe(60);
      expect(await fx.admin.leaseRemainingSeconds(id)).toBeGreaterThan(50);

      const create = (): Promise<{ succeeded: boolean; revision: number }> => store.txn([{ key, absent: true }], [{ put: key, value: '{"PublicIP":"192.0.2.1"}', lease: id }]);
      const first = await create();
      expect(first.succeeded).toBe(true);
      const again = await create();
      expect(again).toEqual({ succeeded: false, revision: first.revision });

      const kv = await store.get(key);
      expect(kv).toMatchObject({ key, value: '{"PublicIP":"192.0.2.1"}', modRevision: first.revision, leaseId: id, version: 1 });
      expect(await fx.admin.get(key)).toEqual(kv);
      expect(await store.get(`${key}-absent`)).toBeUndefined();

      await store.txn([], [{ put: `${net}/config`, value: '{"Network":"10.5.0.0/16"}' }]);
      expect(await store.networkNames()).toEqual(['default']);
      const listed = await store.list(`${net}/subnets/`);
      expect(listed.kvs.map((k) => k.key)).toEqual([key]);
      expect(listed.revision).toBeGreaterThan(first.revision);
      expect(await store.countSubnets('default')).toBe(1);

      const rewrite: [Compare[], TxnOp[]] = [[{ key, modRevision: first.revision }], [{ put: key, value: 'v2' }]];
      expect(await store.commit(...rewrite)).toBe(true);
      expect(await store.commit(...rewrite)).toBe(false); // the revision moved on
      expect((await fx.admin.get(key))?.leaseId).toBe('0');

      await store.revokeLease((await store.grantLease(60)).id);
      await store.txn([{ prefix: `${net}/subnets/`, unchangedSince: listed.revision + 1 }], [{ deletePrefix: `${net}/subnets/` }]);
      expect((await fx.admin.list(`${net}/subnets/`)).kvs).toEqual([]);
      await store.ping(key, 2000);

      expect(madeEtcd3(store)).toBe(false);
    } finally {
      store.close();
    }
  });

  it('hands a call to etcd3 when the direct connection fails, and every call after it', async () => {
    const direct = new CountingDirect({ endpoints: [`127.0.0.1:${await closedPort()}`] }, 2000);
    const store = new Store(() => createEtcdClient({ endpoints: [fx.etcd.endpoint] }), `${PREFIX}/b`, [fx.etcd.endpoint], { endpoints: [fx.etcd.endpoint] }, direct);
    try {
      const key = `${PREFIX}/b/k`;
      expect(await store.commit([{ key, absent: true }], [{ put: key, value: 'v' }])).toBe(true);
      expect((await store.get(key))?.value).toBe('v');
      expect((await store.list(`${PREFIX}/b/`)).kvs).toHaveLength(1);
      expect(direct.calls).toBe(1);
      expect(madeEtcd3(store)).toBe(true);
    } finally {
      store.close();
    }
  });

  it('keeps the direct client after an error status from etcd, which etcd3 then reports', async () => {
    const direct = new CountingDirect({ endpoints: [fx.etcd.endpoint] }, 2000);
    const store = new Store(() => createEtcdClient({ endpoints: [fx.etcd.endpoint], maxAttempts: 1 }), `${PREFIX}/c`, [fx.etcd.endpoint], { endpoints: [fx.etcd.endpoint] }, direct);
    try {
      const key = `${PREFIX}/c/k`;
      await store.commit([], [{ put: key, value: '1' }]);
      const old = (await store.list(`${PREFIX}/c/`)).revision;
      await store.commit([], [{ put: key, value: '2' }]);
      await fx.admin.call(() => fx.admin.client.kv.compact({ revision: old + 1, physical: true }));
      await expect(store.list(`${PREFIX}/c/`, { revision: old })).rejects.toThrow(/compacted/);
      expect((await store.get(key))?.value).toBe('2');
      expect(direct.calls).toBe(5); // each call tried directly first
    } finally {
      store.close();
    }
  });
});

describe('a store with the direct client and a user', () => {
  const auth = { rootPassword: 'root-secret', user: 'weft', password: 'weft-secret', role: 'weft-rw', prefix: PREFIX + '/' };
  const user = useEtcdWithUser(auth);

  it('calls with the user\'s token, and a wrong password is refused as etcd3 refuses it', async () => {
    const store = Store.connect({ endpoints: [user.etcd.endpoint], username: auth.user, password: auth.password, direct: true });
    const wrong = Store.connect({ endpoints: [user.etcd.endpoint], username: auth.user, password: 'nope', direct: true, maxAttempts: 1 });
    try {
      const key = `${PREFIX}/auth/k`;
      expect(await store.commit([{ key, absent: true }], [{ put: key, value: 'v' }])).toBe(true);
      expect((await store.get(key))?.value).toBe('v');
      expect(madeEtcd3(store)).toBe(false);
      await expect(wrong.get(key)).rejects.toBeInstanceOf(StoreAuthError);
      // Outside the role's prefix: etcd's refusal, as etcd3 reports it.
      await expect(store.get('/elsewhere')).rejects.toBeInstanceOf(StoreAuthError);
    } finally {
      store.close();
      wrong.close();
    }
  });
});
