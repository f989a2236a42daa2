import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { startEtcd, type EtcdServer } from '../helpers/etcd.js';

describe('store against a real etcd', () => {
  let etcd: EtcdServer;
  let store: Store;
  beforeAll(async () => {
    etcd = await startEtcd();
    store = Store.connect({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    store?.close();
    await etcd?.stop();
  });

  it('lists subnets written as flannel bytes, marking keys without an etcd lease as reservations', async () => {
    await store.client.put('/coreos.com/network/config').value('{"Network":"10.5.0.0/16"}');
    await store.client.put('/coreos.com/network/subnets/10.5.3.0-24').value('{"PublicIP":"192.0.2.3","PublicIPv6":null}');
    const lease = store.client.lease(60, { autoKeepAlive: false });
    await lease.put('/coreos.com/network/subnets/10.5.4.0-24').value('{"PublicIP":"192.0.2.4","PublicIPv6":null}');
    const { records, revision } = await store.listSubnets('default');
    expect(revision).toBeGreaterThan(0);
    expect(records.map((r) => [r.name, r.reserved, r.lease.ok])).toEqual([
      ['10.5.3.0-24', true, true],
      ['10.5.4.0-24', false, true],
    ]);
    expect(await store.networkNames()).toEqual(['default']);
    await lease.revoke();
  });
});
