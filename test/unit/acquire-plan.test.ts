import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { freeSubnets } from '../../src/alloc/candidates.js';
import { planAcquisition } from '../../src/agent/acquire-plan.js';
import { encodeLease } from '../../src/api/lease.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import { subnetRecord } from '../../src/store/store.js';

const config = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
const prefix = '/coreos.com/network/subnets/';
let rev = 10;
function rec(key: string, value: object | string, leaseId = '7') {
  const v = typeof value === 'string' ? value : encodeLease(value as never);
  return subnetRecord('default', prefix, { key: prefix + key, value: v, modRevision: rev++, createRevision: 1, version: 1, leaseId });
}
const me = { nodeName: 'h1', publicIP: Ipv4.parse('192.0.2.1')! };
const first = () => 0;

describe('acquisition plan', () => {
  it('adopts a reservation for this node name before anything else', () => {
    const records = [
      rec('10.5.9.0-24', { publicIP: '192.0.2.1', nodeName: 'h1', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:01' } }),
      rec('10.5.3.0-24', { publicIP: '0.0.0.0', nodeName: 'h1' }, '0'),
    ];
    const plan = planAcquisition(config, records, me, undefined, first);
    expect(plan.action).toBe('adopt-reservation');
    expect(plan.action === 'adopt-reservation' && plan.record.name).toBe('10.5.3.0-24');
    // The dynamic lease this node also held is released: a host holds one subnet.
    expect(plan.release.map((r) => r.name)).toEqual(['10.5.9.0-24']);
  });

  it('adopts a reservation by public IP when it names no node', () => {
    const plan = planAcquisition(config, [rec('10.5.4.0-24', { publicIP: '192.0.2.1' }, '0')], me, undefined, first);
    expect(plan.action).toBe('adopt-reservation');
  });

  it('does not take a reservation for another node even with our public IP', () => {
    const plan = planAcquisition(config, [rec('10.5.4.0-24', { publicIP: '192.0.2.1', nodeName: 'h2' }, '0')], me, undefined, first);
    expect(plan.action === 'create' && plan.subnets.ipv4!.toString()).toBe('10.5.1.0/24');
  });

  it('reuses its lease by node name, else by public IP (flanneld-written, no node name)', () => {
    const byName = planAcquisition(config, [rec('10.5.7.0-24', { publicIP: '192.0.2.99', nodeName: 'h1' })], me, undefined, first);
    expect(byName.action === 'reuse' && [byName.record.name, byName.matchedBy]).toEqual(['10.5.7.0-24', 'node-name']);
    const byIp = planAcquisition(config, [rec('10.5.8.0-24', '{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}')], me, undefined, first);
    expect(byIp.action === 'reuse' && [byIp.record.name, byIp.matchedBy]).toEqual(['10.5.8.0-24', 'public-ip']);
  });

  it('releases its lease when it no longer fits and allocates anew', () => {
    const small = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/16', subnetLength: 25, backend: { type: 'vxlan' } });
    const plan = planAcquisition(small, [rec('10.5.7.0-24', { publicIP: '192.0.2.1', nodeName: 'h1' })], me, undefined, first);
    expect(plan.action).toBe('create');
    expect(plan.release.map((r) => r.name)).toEqual(['10.5.7.0-24']);
  });

  it('reclaims the subnet from subnet.env only when it is free and fits', () => {
    const prev = Cidr.parse('10.5.42.0/24')!;
    expect(planAcquisition(config, [], me, { ipv4: prev }, first)).toMatchObject({ action: 'create', source: 'previous' });
    const held = [rec('10.5.42.0-24', { publicIP: '192.0.2.2', nodeName: 'h2' })];
    expect(planAcquisition(config, held, me, { ipv4: prev }, first)).toMatchObject({ action: 'create', source: 'random' });
    const outside = Cidr.parse('10.6.42.0/24')!;
    expect(planAcquisition(config, [], me, { ipv4: outside }, first)).toMatchObject({ action: 'create', source: 'random' });
    const network0 = Cidr.parse('10.5.0.0/24')!; // below SubnetMin
    expect(planAcquisition(config, [], me, { ipv4: network0 }, first)).toMatchObject({ action: 'create', source: 'random' });
  });

  it('never hands out a subnet held by a flanneld host; a key of another length holds nothing', () => {
    const records = [
      rec('10.5.1.0-24', '{"PublicIP":"192.0.2.50","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}'),
      // Written around the allocator: peers do not route it (their screen wants /24), and it
      // must not block the space it spans (issue 14, item 10).
      rec('10.5.2.0-23', { publicIP: '192.0.2.51' }),
    ];
    const plan = planAcquisition(config, records, me, undefined, first);
    expect(plan.action === 'create' && plan.subnets.ipv4!.toString()).toBe('10.5.2.0/24');
  });

  it('does not let an undecodable key block allocation', () => {
    const plan = planAcquisition(config, [rec('10.5.0.0-16', 'junk'), rec('10.5.1.0-24', 'also junk')], me, undefined, first);
    expect(plan.action === 'create' && plan.subnets.ipv4!.toString()).toBe('10.5.2.0/24'); // 10.5.1.0-24 exists
  });

  it('picks uniformly among the first 100 free subnets', () => {
    const picks = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const plan = planAcquisition(config, [], me, undefined, () => (i + 0.5) / 100);
      if (plan.action === 'create') picks.add(plan.subnets.ipv4!.toString());
    }
    expect(picks.size).toBe(100);
    expect(picks.has('10.5.100.0/24')).toBe(true);
    expect(picks.has('10.5.101.0/24')).toBe(false);
  });

  it('says full when every subnet is taken', () => {
    const tiny = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/28', backend: { type: 'vxlan' } });
    const records = ['10.5.0.4-30', '10.5.0.8-30', '10.5.0.12-30'].map((k, i) => rec(k, { publicIP: `192.0.2.${i + 10}` }));
    expect(planAcquisition(tiny, records, me, undefined, first).action).toBe('full');
  });
});

describe('free subnet candidates', () => {
  it('stops at the limit and respects min/max', () => {
    const v4 = config.ipv4!;
    const free = freeSubnets({ network: v4.network, subnetLen: 24, min: v4.subnetMin.value, max: v4.subnetMax.value }, [], 3);
    expect(free.map(String)).toEqual(['10.5.1.0/24', '10.5.2.0/24', '10.5.3.0/24']);
  });
});
