import { describe, expect, it } from 'vitest';
import { useEtcd } from '../helpers/etcd.js';

describe('store against a real etcd', () => {
  const fx = useEtcd();

  it('lists subnets written as flannel bytes, marking keys without an etcd lease as reservations', async () => {
    await fx.admin.client.put('/coreos.com/network/config').value('{"Network":"10.5.0.0/16"}');
    await fx.admin.client.put('/coreos.com/network/subnets/10.5.3.0-24').value('{"PublicIP":"192.0.2.3","PublicIPv6":null}');
    const lease = fx.admin.client.lease(60, { autoKeepAlive: false });
    await lease.put('/coreos.com/network/subnets/10.5.4.0-24').value('{"PublicIP":"192.0.2.4","PublicIPv6":null}');
    const { records, revision } = await fx.admin.listSubnets('default');
    expect(revision).toBeGreaterThan(0);
    expect(records.map((r) => [r.name, r.reserved, r.lease.ok])).toEqual([
      ['10.5.3.0-24', true, true],
      ['10.5.4.0-24', false, true],
    ]);
    expect(await fx.admin.networkNames()).toEqual(['default']);
    await lease.revoke();
  });
});
