// Reservations beside flanneld hosts. flanneld (v0.20 to v0.28, etcd mode) looks its lease up
// by PublicIP alone (findLeaseByIP): the first key whose PublicIP equals its own IPv4 public
// address, which is 0.0.0.0 on an IPv6-only host. A reservation must be claimed only by the
// host it names, never by a flanneld host that merely shares a placeholder.
import { describe, expect, it } from 'vitest';
import { Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { planAcquisition } from '../../src/agent/acquire-plan.js';
import { reservationValue } from '../../src/api/convert.js';
import { decodeLease } from '../../src/api/lease.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import type { SubnetSpec } from '../../src/api/types.js';
import { subnetRecord } from '../../src/store/store.js';

/** flanneld's findLeaseByIP against one reservation value: does a host with this PublicIP take it? */
function flanneldClaims(value: string, hostPublicIP: string): boolean {
  const v = decodeLease(value);
  if (!v.ok) return false; // flanneld skips a value it cannot read
  return v.value.publicIP === hostPublicIP;
}

const hosts = {
  'IPv4 or dual-stack flanneld host 192.0.2.1': '192.0.2.1',
  'another IPv4 flanneld host 192.0.2.9': '192.0.2.9',
  'IPv6-only flanneld host (PublicIP 0.0.0.0)': '0.0.0.0',
};

describe('reservations as flanneld hosts see them', () => {
  it.each<[string, SubnetSpec, string[]]>([
    ['by node name', { network: 'default', cidr: '10.5.3.0/24', node: 'gw-1' }, []],
    ['by node name, dual-stack', { network: 'default', cidr: '10.5.3.0/24', ipv6Cidr: 'fd00:5:0:3::/64', node: 'gw-1' }, []],
    ['by IPv6 public address (IPv6-only network)', { network: 'default', ipv6Cidr: 'fd00:5:0:3::/64', publicIPv6: '2001:db8::5' }, []],
    ['by public IP', { network: 'default', cidr: '10.5.3.0/24', publicIP: '192.0.2.1' }, ['IPv4 or dual-stack flanneld host 192.0.2.1']],
    ['by node name and public IP', { network: 'default', cidr: '10.5.3.0/24', node: 'gw-1', publicIP: '192.0.2.1' }, ['IPv4 or dual-stack flanneld host 192.0.2.1']],
  ])('%s: claimed by %j only', (_name, spec, claimants) => {
    const value = reservationValue(spec);
    expect(decodeLease(value).ok).toBe(true);
    // No BackendType: every flanneld and weft host ignores it as a peer.
    expect(value).not.toContain('BackendType');
    expect(Object.entries(hosts).filter(([, ip]) => flanneldClaims(value, ip)).map(([who]) => who)).toEqual(claimants);
  });

  it('is still adopted by the weft host it names (node name, or IPv6 address in an IPv6-only network)', () => {
    const prefix = '/coreos.com/network/subnets/';
    const rec = (key: string, value: string) => subnetRecord('default', prefix, { key: prefix + key, value, modRevision: 5, createRevision: 5, version: 1, leaseId: '0' });
    const v4 = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    const byName = rec('10.5.3.0-24', reservationValue({ network: 'default', cidr: '10.5.3.0/24', node: 'gw-1' }));
    expect(planAcquisition(v4, [byName], { nodeName: 'gw-1', publicIP: Ipv4.parse('192.0.2.1')! }, undefined, () => 0).action).toBe('adopt-reservation');
    expect(planAcquisition(v4, [byName], { nodeName: 'gw-2', publicIP: Ipv4.parse('255.255.255.255')! }, undefined, () => 0).action).toBe('create');
    const v6 = resolveNetworkOrThrow('default', { ipv6Cidr: 'fd00:5::/48', backend: { type: 'vxlan' } });
    const by6 = rec('0.0.0.0-0&fd00:5:0:3::-64', reservationValue({ network: 'default', ipv6Cidr: 'fd00:5:0:3::/64', publicIPv6: '2001:db8::5' }));
    expect(planAcquisition(v6, [by6], { nodeName: 'h5', publicIPv6: Ipv6.parse('2001:db8::5')! }, undefined, () => 0).action).toBe('adopt-reservation');
  });
});
