// Lease acquisition against a real etcd: races, a full network, restarts, reservations.
import { describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { Ipv4 } from '../../src/alloc/cidr.js';
import { acquireLease, OutOfSubnetsError } from '../../src/agent/acquire.js';
import type { NetworkConfig } from '../../src/api/network.js';
import { silentLogger } from '../../src/log.js';
import { LeaseWriter } from '../../src/store/leases.js';
import { encodeLease } from '../../src/api/lease.js';
import { Store } from '../../src/store/store.js';
import { acquireAs, etcdFixture, valueFor } from '../helpers/acquirers.js';

const fx = etcdFixture('acq');

async function subnetsOf(prefix: string) {
  const store = new Store(fx.admin.client, prefix, [fx.etcd.endpoint]);
  return (await store.listSubnets('default')).records;
}

function assertNoOverlap(cidrs: Cidr[]) {
  const sorted = [...cidrs].sort((a, b) => a.first - b.first);
  for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.first).toBeGreaterThan(sorted[i - 1]!.last);
}

describe('lease acquisition against etcd', () => {
  it('gives 250 simultaneous acquirers distinct /24s with no failures, respecting flanneld leases', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    // Two hosts run flanneld: their leases must never be handed out again.
    const flannelLease = fx.admin.client.lease(600, { autoKeepAlive: false });
    await flannelLease.put(`${prefix}/subnets/10.5.77.0-24`).value('{"PublicIP":"198.51.100.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}');
    await flannelLease.put(`${prefix}/subnets/10.5.78.0-24`).value('{"PublicIP":"198.51.100.2","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:45"}}');

    const clients = Array.from({ length: 250 }, () => Store.connect({ endpoints: [fx.etcd.endpoint], prefix }));
    try {
      const started = Date.now();
      const results = await Promise.all(clients.map((s, i) => acquireAs(s, config, i)));
      const elapsed = Date.now() - started;
      const subnets = results.map((r) => r.held.subnets.ipv4!);
      expect(new Set(subnets.map(String)).size).toBe(250);
      assertNoOverlap(subnets);
      expect(subnets.map(String)).not.toContain('10.5.77.0/24');
      expect(subnets.map(String)).not.toContain('10.5.78.0/24');
      const records = await subnetsOf(prefix);
      expect(records).toHaveLength(252);
      assertNoOverlap(records.map((r) => r.cidr!));
      const retries = results.reduce((s, r) => s + r.attempts - 1, 0);
      console.log(`250-way join: ${elapsed} ms, ${retries} lost races retried`);
      expect(elapsed).toBeLessThan(30_000); // a sanity bound, not a benchmark (see bench/)
    } finally {
      clients.forEach((c) => c.close());
      await flannelLease.revoke();
    }
  });

  it('fills a nearly full network exactly: the rest are told "out of subnets", none doubled', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.6.0.0/20', backend: { type: 'vxlan' } });
    // 15 assignable /24s (10.6.1.0 .. 10.6.15.0); 10 are already taken.
    for (let i = 1; i <= 10; i++) await fx.admin.client.put(`${prefix}/subnets/10.6.${i}.0-24`).value(encodeLease(valueFor(1000 + i)));
    const clients = Array.from({ length: 30 }, () => Store.connect({ endpoints: [fx.etcd.endpoint], prefix }));
    try {
      const results = await Promise.allSettled(clients.map((s, i) => acquireAs(s, config, i)));
      const won = results.filter((r) => r.status === 'fulfilled');
      const full = results.filter((r) => r.status === 'rejected' && r.reason instanceof OutOfSubnetsError);
      expect(won).toHaveLength(5);
      expect(full).toHaveLength(25);
      expect((full[0] as PromiseRejectedResult).reason.message).toMatch(/^out of subnets: every \/24 between 10\.6\.1\.0 and 10\.6\.15\.0/);
      const records = await subnetsOf(prefix);
      expect(records).toHaveLength(15);
      assertNoOverlap(records.map((r) => r.cidr!));
    } finally {
      clients.forEach((c) => c.close());
    }
  });

  it('keeps the subnet across restarts: by node name, by public IP, and by subnet.env after expiry', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.7.0.0/16', backend: { type: 'vxlan' } });
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    try {
      const first = await acquireAs(store, config, 1);
      const again = await acquireAs(store, config, 1);
      expect(again.held.subnets.ipv4!.toString()).toBe(first.held.subnets.ipv4!.toString());
      expect(again.how).toMatch(/node-name/);
      expect(await subnetsOf(prefix)).toHaveLength(1);

      // A flanneld-written lease (no node name) for our public IP is ours after a switch to weft.
      const flannel = fx.admin.client.lease(600, { autoKeepAlive: false });
      await flannel.put(`${prefix}/subnets/10.7.200.0-24`).value(`{"PublicIP":"${valueFor(2).publicIP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}`);
      const byIp = await acquireAs(store, config, 2);
      expect([byIp.held.subnets.ipv4!.toString(), byIp.how]).toEqual(['10.7.200.0/24', 'reused lease (matched by public-ip)']);
      expect((await store.get(byIp.held.key))?.value).toBe(encodeLease(valueFor(2)));

      // The lease expired (revoked) while the host was down: subnet.env brings the subnet back.
      await store.client.leaseClient.leaseRevoke({ ID: again.held.leaseId });
      expect((await store.get(first.held.key))).toBeUndefined();
      const back = await acquireAs(store, config, 1, first.held.subnets);
      expect([back.held.subnets.ipv4!.toString(), back.how]).toEqual([first.held.subnets.ipv4!.toString(), 'reclaimed subnet from subnet file']);

      // ...unless someone else took it meanwhile: then a new subnet.
      await store.client.leaseClient.leaseRevoke({ ID: back.held.leaseId });
      const thief = await acquireAs(store, config, 3, first.held.subnets);
      expect(thief.held.subnets.ipv4!.toString()).toBe(first.held.subnets.ipv4!.toString());
      const moved = await acquireAs(store, config, 1, first.held.subnets);
      expect(moved.held.subnets.ipv4!.toString()).not.toBe(first.held.subnets.ipv4!.toString());
    } finally {
      store.close();
    }
  });

  it('adopts a reservation and keeps it a reservation (no etcd lease) across restarts', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.8.0.0/16', backend: { type: 'vxlan' } });
    const key = `${prefix}/subnets/10.8.33.0-24`;
    await fx.admin.client.put(key).value(encodeLease({ publicIP: '0.0.0.0', nodeName: 'node-5' }));
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    try {
      const r1 = await acquireAs(store, config, 5);
      expect([r1.held.subnets.ipv4!.toString(), r1.held.reserved, r1.how]).toEqual(['10.8.33.0/24', true, 'adopted reservation']);
      let kv = await store.get(key);
      expect(kv?.leaseId).toBe('0');
      expect(kv?.value).toBe(encodeLease(valueFor(5)));
      const r2 = await acquireAs(store, config, 5);
      expect([r2.held.subnets.ipv4!.toString(), r2.held.reserved]).toEqual(['10.8.33.0/24', true]);
      kv = await store.get(key);
      expect(kv?.leaseId).toBe('0');
      expect(kv?.modRevision).toBe(r1.held.modRevision); // unchanged value: nothing rewritten
      // Another node never gets it.
      const other = await acquireAs(store, config, 6);
      expect(other.held.subnets.ipv4!.toString()).not.toBe('10.8.33.0/24');
    } finally {
      store.close();
    }
  });
  it('starts from a listing taken earlier (the agent asks for it at start-up), and lists again when it is out of date', async () => {
    const { prefix, config } = await fx.network({ cidr: '10.8.0.0/16', backend: { type: 'vxlan' } });
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    // Both hosts pick the first free candidate, so a stale listing makes the second collide.
    const acquire = (i: number, firstListing?: Promise<Awaited<ReturnType<Store['listSubnets']>> | undefined>) =>
      acquireLease({
        store,
        writer: new LeaseWriter(store, 'default'),
        config: config as NetworkConfig,
        identity: { nodeName: valueFor(i).nodeName!, publicIP: Ipv4.parse(valueFor(i).publicIP)! },
        leaseValue: valueFor(i),
        logger: silentLogger,
        random: () => 0,
        firstListing,
      });
    try {
      const early = await store.listSubnets('default'); // empty: taken before host 1 wrote its lease
      const first = await acquire(1);
      const second = await acquire(2, Promise.resolve(early));
      expect(second.attempts).toBe(2); // the old listing was used, lost its CAS, and the retry listed afresh
      expect(second.held.subnets.ipv4!.toString()).not.toBe(first.held.subnets.ipv4!.toString());
      // A listing that is current wins at once; a failed one (undefined) means: list now.
      const current = await store.listSubnets('default');
      expect((await acquire(3, Promise.resolve(current))).attempts).toBe(1);
      expect((await acquire(4, Promise.resolve(undefined))).attempts).toBe(1);
      const records = await subnetsOf(prefix);
      expect(records).toHaveLength(4);
      assertNoOverlap(records.map((r) => r.cidr!));
    } finally {
      store.close();
    }
  });
});
