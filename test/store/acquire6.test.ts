// Dual-stack and IPv6-only acquisition against a real etcd: one key per host holding both
// subnets, created in one transaction; IPv6-only hosts never sharing a lease (flanneld's
// PublicIP 0.0.0.0 bug); concurrent acquirers always ending with distinct pairs.
import { describe, expect, it } from 'vitest';
import { Cidr, Cidr6 } from '../../src/alloc/cidr.js';
import { encodeLease, formatLeaseKey, parseLeaseKey, type LeaseKey } from '../../src/api/lease.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import { LeaseWriter } from '../../src/store/leases.js';
import { Store, type SubnetRecord } from '../../src/store/store.js';
import { acquireAs, etcdFixture, valueFor6 } from '../helpers/acquirers.js';

const fx = etcdFixture('acq6');

async function subnetsOf(prefix: string): Promise<SubnetRecord[]> {
  const store = new Store(fx.admin.client, prefix, [fx.etcd.endpoint]);
  return (await store.listSubnets('default')).records;
}

/** Every pair of keys is disjoint in each family. */
function expectDisjoint(keys: LeaseKey[]): void {
  const v4 = keys.map((k) => k.ipv4).filter((c): c is Cidr => c !== undefined);
  const v6 = keys.map((k) => k.ipv6).filter((c): c is Cidr6 => c !== undefined);
  for (let i = 0; i < v4.length; i++) for (let j = i + 1; j < v4.length; j++) expect(v4[i]!.overlaps(v4[j]!), `${v4[i]} ${v4[j]}`).toBe(false);
  for (let i = 0; i < v6.length; i++) for (let j = i + 1; j < v6.length; j++) expect(v6[i]!.overlaps(v6[j]!), `${v6[i]} ${v6[j]}`).toBe(false);
}

describe('IPv6-only acquisition against etcd', () => {
  it('never lets two hosts share a lease, across restarts, nor take a flanneld host\'s', async () => {
    const { prefix, config } = await fx.network({ ipv6Cidr: 'fd00:6::/48', backend: { type: 'vxlan' } });
    // A flanneld host's IPv6-only lease: PublicIP 0.0.0.0, no node name (flanneld matches
    // leases by PublicIP, so under flanneld every IPv6-only host would take this one).
    const flanneld = fx.admin.client.lease(600, { autoKeepAlive: false });
    const theirs = `${prefix}/subnets/0.0.0.0-0&fd00:6:0:77::-64`;
    const theirValue = '{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8:ff::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"}}';
    await flanneld.put(theirs).value(theirValue);
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    try {
      const a = await acquireAs(store, config, 1);
      const b = await acquireAs(store, config, 2);
      expect(a.held.key).not.toBe(b.held.key);
      expect(a.held.subnets.ipv4).toBeUndefined();
      expect(a.held.key).toMatch(/\/subnets\/0\.0\.0\.0-0&fd00:6:[0-9a-f:]+-64$/);
      expect(a.how).toBe('allocated new subnet');
      // Restarts (no subnet.env) find their own lease by node name, never the other's.
      const a2 = await acquireAs(store, config, 1);
      const b2 = await acquireAs(store, config, 2);
      expect([a2.held.key, a2.how]).toEqual([a.held.key, 'reused lease (matched by node-name)']);
      expect([b2.held.key, b2.how]).toEqual([b.held.key, 'reused lease (matched by node-name)']);
      // The flanneld lease is untouched.
      expect((await store.get(theirs))?.value).toBe(theirValue);
      const records = await subnetsOf(prefix);
      expect(records.map((r) => r.name).sort()).toEqual([a.held.key, b.held.key, theirs].map((k) => k.slice(`${prefix}/subnets/`.length)).sort());
      // The value is flanneld's IPv6-only form plus the node name.
      expect((await store.get(a.held.key))?.value).toBe(encodeLease(valueFor6(1, true)));
      expect((await store.get(a.held.key))?.value.startsWith('{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::2","BackendType":"vxlan","BackendV6Data":')).toBe(true);
    } finally {
      store.close();
      await flanneld.revoke();
    }
  });

  it('a host whose node name is unknown is matched by its PublicIPv6, never by PublicIP 0.0.0.0', async () => {
    const { prefix, config } = await fx.network({ ipv6Cidr: 'fd00:7::/48', backend: { type: 'vxlan' } });
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    const flanneld = fx.admin.client.lease(600, { autoKeepAlive: false });
    try {
      // Host 3 used to run flanneld: its lease has its PublicIPv6 and no node name.
      const v = valueFor6(3, true);
      const key = `${prefix}/subnets/0.0.0.0-0&fd00:7:0:33::-64`;
      await flanneld.put(key).value(encodeLease({ ...v, nodeName: undefined }));
      const r = await acquireAs(store, config, 3);
      expect([r.held.key, r.how]).toEqual([key, 'reused lease (matched by public-ipv6)']);
      // Host 4 (another PublicIPv6) gets a lease of its own.
      const other = await acquireAs(store, config, 4);
      expect(other.held.key).not.toBe(key);
    } finally {
      store.close();
      await flanneld.revoke().catch(() => {});
    }
  });
});

describe('renewal and reservations with IPv6', () => {
  it.each([
    ['dual-stack', { cidr: '10.9.0.0/16', ipv6Cidr: 'fd00:29::/48' }, '10.9.33.0-24&fd00:29:0:33::-64', { nodeName: 'node-5' }],
    ['IPv6-only, by node name', { ipv6Cidr: 'fd00:30::/48' }, '0.0.0.0-0&fd00:30:0:33::-64', { nodeName: 'node-5' }],
    ['IPv6-only, by PublicIPv6', { ipv6Cidr: 'fd00:31::/48' }, '0.0.0.0-0&fd00:31:0:33::-64', { publicIPv6: '2001:db8::6' }],
  ])('%s: adopts a reservation, keeps it lease-less, and a lease renews under its key', async (_name, net, reservedKey, holder) => {
    const { prefix, config } = await fx.network({ ...net, backend: { type: 'vxlan' } });
    const key = `${prefix}/subnets/${reservedKey}`;
    await fx.admin.client.put(key).value(encodeLease({ publicIP: '0.0.0.0', ...holder }));
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    try {
      const r = await acquireAs(store, config, 5);
      expect([r.held.key, r.held.reserved, r.how]).toEqual([key, true, 'adopted reservation']);
      expect((await store.get(key))?.leaseId).toBe('0');
      expect((await store.get(key))?.value).toBe(encodeLease(valueFor6(5, !config.ipv4)));
      // Another host gets a key of its own, and renews it under the same key.
      const other = await acquireAs(store, config, 6);
      expect(other.held.key).not.toBe(key);
      const writer = new LeaseWriter(store, 'default');
      const renewed = await writer.renew(other.held.subnets, other.held.modRevision, valueFor6(6, !config.ipv4), 60_000);
      expect(renewed.ok && [renewed.held.key, renewed.held.leaseId !== other.held.leaseId]).toEqual([other.held.key, true]);
      // Deleted by an operator: re-acquired from the subnets it held, as the agent does.
      await store.client.delete().key(other.held.key).exec();
      const back = await acquireAs(store, config, 6, other.held.subnets);
      expect([back.held.key, back.how]).toEqual([other.held.key, 'reclaimed subnet from subnet file']);
    } finally {
      store.close();
    }
  });
});

describe('dual-stack acquisition against etcd', () => {
  it('creates one key with both subnets, under one etcd lease, in one transaction', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.6.0.0/16', ipv6Cidr: 'fd00:16::/48', backend: { type: 'vxlan' } });
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    try {
      const r = await acquireAs(store, config, 1);
      const records = await subnetsOf(prefix);
      expect(records).toHaveLength(1);
      const [only] = records;
      expect(only!.kv.key).toBe(r.held.key);
      expect(only!.subnets?.ipv4 && config.ipv4!.network.contains(only!.subnets.ipv4)).toBe(true);
      expect(only!.subnets?.ipv6 && config.ipv6!.network.contains(only!.subnets.ipv6)).toBe(true);
      expect(only!.kv.leaseId).not.toBe('0');
      expect(only!.kv.createRevision).toBe(r.held.modRevision); // the key and both halves came from one revision
      expect(only!.kv.value.startsWith('{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::2","BackendType":"vxlan","BackendData":')).toBe(true);
      // A restart keeps both halves (node name), and so does one from subnet.env alone.
      const again = await acquireAs(store, config, 1);
      expect(again.held.key).toBe(r.held.key);
      await store.client.delete().key(r.held.key).exec();
      const back = await acquireAs(store, config, 1, r.held.subnets);
      expect([back.held.key, back.how]).toEqual([r.held.key, 'reclaimed subnet from subnet file']);
    } finally {
      store.close();
    }
  });

  it('refuses, in the create transaction, a key whose IPv4 half another key holds in any form', async () => {
    const { prefix } = await fx.network({ cidr: '10.7.0.0/16', ipv6Cidr: 'fd00:17::/48', backend: { type: 'vxlan' } });
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    const writer = new LeaseWriter(store, 'default');
    const value = valueFor6(1, false);
    const want = parseLeaseKey('10.7.5.0-24&fd00:17:0:5::-64')!;
    try {
      // Another host raced us to 10.7.5.0/24 with a different IPv6 subnet.
      await store.client.put(`${prefix}/subnets/10.7.5.0-24&fd00:17:0:9::-64`).value(encodeLease(valueFor6(2, false)));
      expect(await writer.create(want, value, 60_000)).toEqual({ ok: false, reason: 'exists' });
      await store.client.delete().key(`${prefix}/subnets/10.7.5.0-24&fd00:17:0:9::-64`).exec();
      // ... or holds it in the IPv4-only form (a lease from before the network had IPv6).
      await store.client.put(`${prefix}/subnets/10.7.5.0-24`).value(encodeLease(valueFor6(2, false)));
      expect(await writer.create(want, value, 60_000)).toEqual({ ok: false, reason: 'exists' });
      await store.client.delete().key(`${prefix}/subnets/10.7.5.0-24`).exec();
      // Nothing was written by the refused attempts; with the way clear, the key is created.
      expect(await subnetsOf(prefix)).toEqual([]);
      const ok = await writer.create(want, value, 60_000);
      expect(ok.ok && formatLeaseKey(ok.held.subnets)).toBe('10.7.5.0-24&fd00:17:0:5::-64');
      // A second create of the same pair is refused as before (flannel's Version == 0).
      expect(await writer.create(want, value, 60_000)).toEqual({ ok: false, reason: 'exists' });
      // Keys that merely share a prefix of the text ("10.7.5.0-24" vs "10.7.5.0-240...") are not confused.
      const next = await writer.create(parseLeaseKey('10.7.50.0-24&fd00:17:0:50::-64')!, value, 60_000);
      expect(next.ok).toBe(true);
    } finally {
      store.close();
    }
  });

  it.each([
    ['a small IPv6 range (walked: every acquirer sees the same candidates)', 'fd00:18::/57', 60],
    ['a /48 (sampled)', 'fd00:19::/48', 60],
  ])('concurrent acquirers always end with distinct pairs: %s', async (_name, ipv6Cidr, n) => {
    const { prefix, config } = await fx.network({ cidr: '10.8.0.0/16', ipv6Cidr, backend: { type: 'vxlan' } });
    const clients = Array.from({ length: n }, () => Store.connect({ endpoints: [fx.etcd.endpoint], prefix }));
    try {
      const started = Date.now();
      const results = await Promise.all(clients.map((s, i) => acquireAs(s, config, i)));
      const attempts = results.reduce((sum, r) => sum + r.attempts, 0);
      console.log(`${n} dual-stack acquirers in ${ipv6Cidr}: ${Date.now() - started} ms, ${attempts - n} retries`);
      const held = results.map((r) => r.held.subnets);
      expect(new Set(results.map((r) => r.held.key)).size).toBe(n);
      expectDisjoint(held);
      // The store agrees: exactly one key per host (every withdrawn key is gone), all disjoint.
      const records = await subnetsOf(prefix);
      expect(records).toHaveLength(n);
      expect(records.map((r) => r.kv.key).sort()).toEqual(results.map((r) => r.held.key).sort());
      expectDisjoint(records.map((r) => r.subnets!));
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('concurrent IPv6-only acquirers in a small range end with distinct subnets', async () => {
    const { prefix, config } = await fx.network({ ipv6Cidr: 'fd00:20::/57', backend: { type: 'host-gw' } });
    expect(resolveNetworkOrThrow('x', { ipv6Cidr: 'fd00:20::/57', backend: { type: 'host-gw' } }).ipv6!.subnetLen).toBe(64);
    const n = 60;
    const clients = Array.from({ length: n }, () => Store.connect({ endpoints: [fx.etcd.endpoint], prefix }));
    try {
      const results = await Promise.all(clients.map((s, i) => acquireAs(s, config, i)));
      expectDisjoint(results.map((r) => r.held.subnets));
      expect(await subnetsOf(prefix)).toHaveLength(n);
    } finally {
      for (const c of clients) c.close();
    }
  });
});
