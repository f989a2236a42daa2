import { describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { compareConfigs } from '../../src/agent/config-change.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';

const base: NetworkSpec = { cidr: '10.5.0.0/16', subnetLength: 24, backend: { type: 'vxlan', vni: 1 } };
const cfg = (over: Partial<NetworkSpec> = {}) => resolveNetworkOrThrow('default', { ...base, ...over });
const held = { ipv4: Cidr.parse('10.5.7.0/24')! };

describe('network config changes under a running agent', () => {
  it('is a no-op for the same config', () => {
    expect(compareConfigs(cfg(), cfg(), held)).toMatchObject({ applied: [], needsRestart: [], subnetOutOfRange: false });
  });

  it('applies a new lease TTL and subnet range live', () => {
    const c = compareConfigs(cfg(), cfg({ leaseTTL: '1h', subnetMin: '10.5.2.0', subnetMax: '10.5.100.0' }), held);
    expect(c.applied).toEqual(['leaseTTL', 'subnetMin', 'subnetMax']);
    expect(c.needsRestart).toEqual([]);
    expect([c.next.leaseTTLms, c.next.ipv4!.subnetMin.toString(), c.next.ipv4!.subnetMax.toString()]).toEqual([3_600_000, '10.5.2.0', '10.5.100.0']);
    expect(c.subnetOutOfRange).toBe(false);
  });

  it('says when the held subnet falls out of a narrowed range', () => {
    expect(compareConfigs(cfg(), cfg({ subnetMin: '10.5.10.0' }), held).subnetOutOfRange).toBe(true);
  });

  it('leaves the CIDR, subnet length and backend to a restart, keeping the running values', () => {
    const c = compareConfigs(cfg(), cfg({ cidr: '10.6.0.0/16', subnetLength: 25, backend: { type: 'vxlan', vni: 2, port: 4789, directRouting: true } }), held);
    expect(c.needsRestart).toEqual(['cidr', 'subnetLength', 'backend.vni', 'backend.port', 'backend.directRouting']);
    expect(c.applied).toEqual([]);
    expect([c.next.ipv4!.network.toString(), c.next.backend.vni]).toEqual(['10.5.0.0/16', 1]);
    expect(compareConfigs(cfg(), cfg({ backend: { type: 'host-gw' } }), held).needsRestart).toEqual(['backend.type', 'backend.vni']);
  });
});
