// Acquisition plans in dual-stack and IPv6-only networks: identity, fit, the previous
// subnet.env, random picks, and the newer-of-two-overlapping rule.
import { describe, expect, it } from 'vitest';
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { olderOverlap, planAcquisition } from '../../src/agent/acquire-plan.js';
import { encodeLease, formatLeaseKey, type LeaseValue } from '../../src/api/lease.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import { subnetRecord } from '../../src/store/store.js';

const vxlan = { type: 'vxlan' };
const dual = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: vxlan });
const v6only = resolveNetworkOrThrow('default', { ipv6Cidr: 'fd00:5::/48', backend: vxlan });
const prefix = '/coreos.com/network/subnets/';
let rev = 10;
function rec(key: string, value: LeaseValue | string, leaseId = '7', createRevision = rev) {
  const v = typeof value === 'string' ? value : encodeLease(value);
  return subnetRecord('default', prefix, { key: prefix + key, value: v, modRevision: rev++, createRevision, version: 1, leaseId });
}
const MAC4 = { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:01' };
const MAC6 = { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:61' };
const me = { nodeName: 'h1', publicIP: Ipv4.parse('192.0.2.1')!, publicIPv6: Ipv6.parse('2001:db8::1')! };
const me6 = { nodeName: 'h1', publicIPv6: Ipv6.parse('2001:db8::1')! };
const first = () => 0;

describe('dual-stack acquisition plan', () => {
  it('creates one key with an IPv4 and an IPv6 subnet, both free and in range', () => {
    const records = [rec('10.5.1.0-24&fd00:5:0:1::-64', { publicIP: '192.0.2.9', publicIPv6: '2001:db8::9', backendType: 'vxlan', backendData: MAC4, backendV6Data: MAC6 })];
    const plan = planAcquisition(dual, records, me, undefined, first);
    expect(plan.action).toBe('create');
    if (plan.action !== 'create') return;
    expect(formatLeaseKey(plan.subnets)).toBe('10.5.2.0-24&fd00:5:0:2::-64');
    expect(plan.source).toBe('random');
  });

  it('picks both halves at random among free candidates', () => {
    const keys = new Set<string>();
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < 50; i++) {
      const plan = planAcquisition(dual, [], me, undefined, random);
      if (plan.action === 'create') keys.add(formatLeaseKey(plan.subnets));
    }
    expect(keys.size).toBeGreaterThan(45);
    const v6 = [...keys].map((k) => k.split('&')[1]);
    expect(new Set(v6).size).toBeGreaterThan(45); // not the first free /64 every time
  });

  it('reuses its lease by node name, else by PublicIP, only when it has both halves', () => {
    const good = rec('10.5.7.0-24&fd00:5:0:7::-64', { publicIP: '192.0.2.99', publicIPv6: '2001:db8::99', nodeName: 'h1', backendType: 'vxlan', backendData: MAC4 });
    expect(planAcquisition(dual, [good], me, undefined, first)).toMatchObject({ action: 'reuse', matchedBy: 'node-name' });
    const flanneld = rec('10.5.8.0-24&fd00:5:0:8::-64', { publicIP: '192.0.2.1', publicIPv6: 'fc00::1', backendType: 'vxlan', backendData: MAC4, backendV6Data: MAC6 });
    expect(planAcquisition(dual, [flanneld], me, undefined, first)).toMatchObject({ action: 'reuse', matchedBy: 'public-ip' });
    // A lease without its IPv6 half (written before the network got IPv6) does not fit: released.
    const v4half = rec('10.5.9.0-24', { publicIP: '192.0.2.1', nodeName: 'h1', backendType: 'vxlan', backendData: MAC4 });
    const plan = planAcquisition(dual, [v4half], me, undefined, first);
    expect(plan.action).toBe('create');
    expect(plan.release.map((r) => r.name)).toEqual(['10.5.9.0-24']);
  });

  it('keeps the subnets of the previous subnet.env, each half on its own', () => {
    const prev = { ipv4: Cidr.parse('10.5.42.0/24')!, ipv6: Cidr6.parse('fd00:5:0:42::/64')! };
    const both = planAcquisition(dual, [], me, prev, first);
    expect(both.action === 'create' && [formatLeaseKey(both.subnets), both.source]).toEqual(['10.5.42.0-24&fd00:5:0:42::-64', 'previous']);
    // Only an IPv4 subnet before (the network just gained IPv6): that one is kept.
    const v4 = planAcquisition(dual, [], me, { ipv4: prev.ipv4 }, first);
    expect(v4.action === 'create' && formatLeaseKey(v4.subnets)).toBe('10.5.42.0-24&fd00:5:0:1::-64');
    // The IPv6 one is taken by another host: a fresh IPv6 subnet, the IPv4 one kept.
    const other = rec('10.5.1.0-24&fd00:5:0:42::-64', { publicIP: '192.0.2.9', nodeName: 'h9', backendType: 'vxlan', backendData: MAC4 });
    const partly = planAcquisition(dual, [other], me, prev, first);
    expect(partly.action === 'create' && formatLeaseKey(partly.subnets)).toBe('10.5.42.0-24&fd00:5:0:1::-64');
  });

  it('treats the IPv4 and IPv6 halves of other keys as taken, whatever their form', () => {
    const records = [
      rec('10.5.1.0-24', { publicIP: '192.0.2.8' }), // a leftover IPv4-only key still holds its /24
      rec('0.0.0.0-0&fd00:5:0:1::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::8' }), // and an IPv6-only one its /64
    ];
    const plan = planAcquisition(dual, records, me, undefined, first);
    expect(plan.action === 'create' && formatLeaseKey(plan.subnets)).toBe('10.5.2.0-24&fd00:5:0:2::-64');
  });

  it('says which stack is full', () => {
    const tiny = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/28', ipv6Cidr: 'fd00:5::/48', backend: vxlan });
    const records = ['10.5.0.4-30&fd00:5:0:1::-64', '10.5.0.8-30&fd00:5:0:2::-64', '10.5.0.12-30&fd00:5:0:3::-64'].map((k, i) => rec(k, { publicIP: `192.0.2.${i + 10}` }));
    expect(planAcquisition(tiny, records, me, undefined, first)).toMatchObject({ action: 'full', stacks: ['IPv4'] });
  });
});

describe('IPv6-only acquisition plan', () => {
  it('creates an IPv6-only key', () => {
    const plan = planAcquisition(v6only, [], me6, undefined, first);
    expect(plan.action === 'create' && formatLeaseKey(plan.subnets)).toBe('0.0.0.0-0&fd00:5:0:1::-64');
  });

  it("never matches a lease by PublicIP 0.0.0.0 (flannel's bug: every IPv6-only host would take the first one's lease)", () => {
    const theirs = rec('0.0.0.0-0&fd00:5:0:1::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::2', backendType: 'vxlan', backendV6Data: MAC6 });
    // Even an identity that (wrongly) carried 0.0.0.0 as its public IP does not match.
    const plan = planAcquisition(v6only, [theirs], { ...me6, publicIP: Ipv4.parse('0.0.0.0')! }, undefined, first);
    expect(plan.action === 'create' && formatLeaseKey(plan.subnets)).toBe('0.0.0.0-0&fd00:5:0:2::-64');
    expect(plan.release).toEqual([]);
  });

  it('matches by node name, else by PublicIPv6', () => {
    const byName = rec('0.0.0.0-0&fd00:5:0:3::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::77', nodeName: 'h1', backendType: 'host-gw' });
    expect(planAcquisition(v6only, [byName], me6, undefined, first)).toMatchObject({ action: 'reuse', matchedBy: 'node-name' });
    const flanneld = rec('0.0.0.0-0&fd00:5:0:4::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::1', backendType: 'vxlan', backendV6Data: MAC6 });
    expect(planAcquisition(v6only, [flanneld], me6, undefined, first)).toMatchObject({ action: 'reuse', matchedBy: 'public-ipv6' });
    const someoneElse = rec('0.0.0.0-0&fd00:5:0:5::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::2', backendType: 'vxlan', backendV6Data: MAC6 });
    expect(planAcquisition(v6only, [someoneElse], me6, undefined, first).action).toBe('create');
  });

  it('adopts a reservation by node name or by PublicIPv6', () => {
    const byIp = rec('0.0.0.0-0&fd00:5:0:9::-64', { publicIP: '0.0.0.0', publicIPv6: '2001:db8::1' }, '0');
    expect(planAcquisition(v6only, [byIp], me6, undefined, first)).toMatchObject({ action: 'adopt-reservation' });
    const byName = rec('0.0.0.0-0&fd00:5:0:8::-64', { publicIP: '0.0.0.0', nodeName: 'h1' }, '0');
    expect(planAcquisition(v6only, [byName], me6, undefined, first)).toMatchObject({ action: 'adopt-reservation' });
  });

  it('does not reuse a dual-stack lease in an IPv6-only network', () => {
    const old = rec('10.5.3.0-24&fd00:5:0:3::-64', { publicIP: '192.0.2.1', publicIPv6: '2001:db8::1', nodeName: 'h1', backendType: 'vxlan', backendData: MAC4 });
    const plan = planAcquisition(v6only, [old], me6, { ipv6: Cidr6.parse('fd00:5:0:3::/64')! }, first);
    // Released, and its IPv6 subnet is free again for this host (from subnet.env).
    expect(plan.release.map((r) => r.name)).toEqual(['10.5.3.0-24&fd00:5:0:3::-64']);
    expect(plan.action === 'create' && [formatLeaseKey(plan.subnets), plan.source]).toEqual(['0.0.0.0-0&fd00:5:0:3::-64', 'previous']);
  });

  it('samples a /32 without walking it', () => {
    const big = resolveNetworkOrThrow('default', { ipv6Cidr: 'fd00::/32', backend: vxlan });
    const started = performance.now();
    const plan = planAcquisition(big, [], me6, undefined, Math.random);
    expect(plan.action).toBe('create');
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('the newer of two overlapping keys gives way', () => {
  it('finds the older key holding one of our subnets', () => {
    const own = { key: prefix + '10.5.2.0-24&fd00:5:0:1::-64', subnets: { ipv4: Cidr.parse('10.5.2.0/24')!, ipv6: Cidr6.parse('fd00:5:0:1::/64')! }, createRevision: 50 };
    const older = rec('10.5.1.0-24&fd00:5:0:1::-64', { publicIP: '192.0.2.9', nodeName: 'h9' }, '7', 40);
    const newer = rec('10.5.3.0-24&fd00:5:0:1::-64', { publicIP: '192.0.2.8', nodeName: 'h8' }, '7', 60);
    const unrelated = rec('10.5.4.0-24&fd00:5:0:4::-64', { publicIP: '192.0.2.7', nodeName: 'h7' }, '7', 30);
    expect(olderOverlap(dual, [older, newer, unrelated], own)?.name).toBe('10.5.1.0-24&fd00:5:0:1::-64');
    expect(olderOverlap(dual, [newer, unrelated], own)).toBeUndefined();
    // A key with an undecodable value holds nothing (as in planning), unless it is exactly our size.
    const junkWide = rec('0.0.0.0-0&fd00:5::-48', 'junk', '7', 10);
    expect(olderOverlap(dual, [junkWide], own)).toBeUndefined();
    const junkSame = rec('0.0.0.0-0&fd00:5:0:1::-64', 'junk', '7', 10);
    expect(olderOverlap(dual, [junkSame], own)?.name).toBe('0.0.0.0-0&fd00:5:0:1::-64');
  });
});
