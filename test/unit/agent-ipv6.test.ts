// The agent's IPv6 pieces that are not the kernel: --public-ipv6 and IPv6 --iface-can-reach,
// choosing the uplink's global IPv6 address, the lease value it publishes, and which
// Network changes follow live.
import { describe, expect, it } from 'vitest';
import { Cidr6, Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { compareConfigs } from '../../src/agent/config-change.js';
import { parseAgentFlags, type AgentOptions } from '../../src/agent/flags.js';
import { selectInterface, type HostSnapshot } from '../../src/agent/iface.js';
import { publishedLease } from '../../src/agent/publish.js';
import { encodeLease, parseLeaseKey } from '../../src/api/lease.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';

const ip = (s: string) => Ipv4.parse(s)!;
const ip6 = (s: string) => Ipv6.parse(s)!;
const none = { ifaces: [], ifaceRegex: [] };
const dualStacks = { ipv4: true, ipv6: true };
const v6Stacks = { ipv4: false, ipv6: true };

const host: HostSnapshot = {
  links: [
    { name: 'lo', index: 1, mtu: 65536, up: true, addresses: [{ ip: ip('127.0.0.1'), prefixLength: 8 }], addresses6: [{ ip: ip6('::1'), prefixLength: 128 }] },
    {
      name: 'eth0',
      index: 2,
      mtu: 1500,
      up: true,
      addresses: [{ ip: ip('192.0.2.1'), prefixLength: 24 }],
      // A link-local address listed first must never be chosen.
      addresses6: [{ ip: ip6('fe80::1'), prefixLength: 64 }, { ip: ip6('2001:db8::1'), prefixLength: 64 }, { ip: ip6('2001:db8::2'), prefixLength: 64 }],
    },
    { name: 'eth1', index: 3, mtu: 9000, up: true, addresses: [], addresses6: [{ ip: ip6('2001:db8:1::9'), prefixLength: 64 }] },
    { name: 'eth2', index: 4, mtu: 1500, up: true, addresses: [{ ip: ip('198.51.100.1'), prefixLength: 24 }], addresses6: [{ ip: ip6('fe80::2'), prefixLength: 64 }] },
  ],
  defaultRouteDev: 'eth2',
  defaultRouteDev6: 'eth1',
};

describe('flags', () => {
  const parse = (argv: string[], env: Record<string, string> = {}) => parseAgentFlags(['--node-name', 'h1', ...argv], env) as AgentOptions;

  it('--public-ipv6 (or FLANNELD_PUBLIC_IPV6) takes an IPv6 address', () => {
    expect(parse(['--public-ipv6', '2001:db8::7']).publicIPv6).toBe('2001:db8::7');
    expect(parse([], { FLANNELD_PUBLIC_IPV6: '2001:db8::8' }).publicIPv6).toBe('2001:db8::8');
    expect(parse(['-public-ipv6=2001:db8::9']).publicIPv6).toBe('2001:db8::9');
    expect(parse([]).publicIPv6).toBeUndefined();
    for (const bad of ['192.0.2.1', 'fe80::1%eth0', 'junk', '2001:db8::/64']) {
      expect(() => parse(['--public-ipv6', bad]), bad).toThrow(/--public-ipv6: .* is not an IPv6 address/);
    }
  });

  it('--iface-can-reach takes an IPv6 address too', () => {
    expect(parse(['--iface-can-reach', '2001:db8::53']).ifaceCanReach).toBe('2001:db8::53');
  });
});

describe('interface selection with IPv6', () => {
  it('dual-stack: the default route interface with its IPv4 and first global IPv6 address', () => {
    const s = selectInterface(none, { ...host, defaultRouteDev: 'eth0' }, dualStacks);
    expect([s.link.name, s.publicIP?.toString(), s.publicIPv6?.toString(), s.uplink6?.address.toString(), s.uplink6?.prefixLength]).toEqual([
      'eth0',
      '192.0.2.1',
      '2001:db8::1',
      '2001:db8::1',
      64,
    ]);
  });

  it('dual-stack needs both families on the interface', () => {
    // eth2 (the IPv4 default route) has only a link-local IPv6 address.
    expect(() => selectInterface(none, host, dualStacks)).toThrow(/no default route via an interface with an IPv4 and a global IPv6 address/);
    expect(() => selectInterface({ ...none, ifaces: ['eth1'] }, host, dualStacks)).toThrow(/none of --iface eth1 exists with an IPv4 and a global IPv6 address/);
  });

  it('IPv6-only: the IPv6 default route, no IPv4 needed or chosen', () => {
    const s = selectInterface(none, host, v6Stacks);
    expect([s.link.name, s.link.mtu, s.uplink, s.publicIP, s.publicIPv6?.toString(), s.how]).toEqual(['eth1', 9000, undefined, undefined, '2001:db8:1::9', 'IPv6 default route']);
    expect(() => selectInterface(none, { links: host.links }, v6Stacks)).toThrow(/no IPv6 default route/);
  });

  it('--iface may name an IPv6 address; its address is the one used', () => {
    const s = selectInterface({ ...none, ifaces: ['2001:db8::2'] }, host, dualStacks);
    expect([s.link.name, s.publicIPv6?.toString(), s.publicIP?.toString()]).toEqual(['eth0', '2001:db8::2', '192.0.2.1']);
    // A link-local address cannot name the interface.
    expect(() => selectInterface({ ...none, ifaces: ['fe80::1'] }, host, v6Stacks)).toThrow(/none of --iface/);
  });

  it('--iface-regex matches IPv6 addresses, --iface-can-reach follows an IPv6 route', () => {
    expect(selectInterface({ ...none, ifaceRegex: ['^2001:db8:1::'] }, host, v6Stacks).link.name).toBe('eth1');
    const s = selectInterface({ ...none, ifaceCanReach: '2001:db8::53' }, { ...host, canReach: { dev: 'eth0', src: ip6('2001:db8::2') } }, dualStacks);
    expect([s.link.name, s.publicIPv6?.toString()]).toEqual(['eth0', '2001:db8::2']);
  });

  it('--public-ipv6 overrides the interface address; a non-local one only with an explicit interface (NAT)', () => {
    expect(selectInterface({ ...none, publicIPv6: '2001:db8::2' }, { ...host, defaultRouteDev: 'eth0' }, dualStacks).publicIPv6?.toString()).toBe('2001:db8::2');
    expect(selectInterface({ ...none, ifaces: ['eth1'], publicIPv6: '2001:db8:ffff::1' }, host, v6Stacks).publicIPv6?.toString()).toBe('2001:db8:ffff::1');
    expect(() => selectInterface({ ...none, publicIPv6: '2001:db8:ffff::1' }, host, v6Stacks)).toThrow(/--public-ipv6 2001:db8:ffff::1 is not a local address/);
  });
});

describe('the lease value the agent publishes', () => {
  const sel = { publicIP: ip('192.0.2.1'), publicIPv6: ip6('2001:db8::1') };
  const net = (spec: Partial<NetworkSpec>) => resolveNetworkOrThrow('default', { backend: { type: 'vxlan' }, ...spec } as NetworkSpec);
  const MAC4 = 'c6:d2:32:6f:8f:44';
  const MAC6 = 'ca:11:22:33:44:55';

  it('IPv4-only: exactly the bytes of before', () => {
    const v = publishedLease({ config: net({ cidr: '10.5.0.0/16' }), selection: sel, nodeName: 'h1', vtepMAC: MAC4, vtepMACv6: MAC6 });
    expect(encodeLease(v)).toBe('{"PublicIP":"192.0.2.1","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"NodeName":"h1"}');
  });

  it("dual-stack: flannel's fields in flannel's order, then the node name", () => {
    const v = publishedLease({ config: net({ cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48' }), selection: sel, nodeName: 'h1', vtepMAC: MAC4, vtepMACv6: MAC6 });
    expect(encodeLease(v)).toBe(
      '{"PublicIP":"192.0.2.1","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"},"NodeName":"h1"}',
    );
    // No IPv6 device (no IPv6 backend yet): no BackendV6Data, never a MAC no device has.
    const noV6 = publishedLease({ config: net({ cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48' }), selection: sel, nodeName: 'h1', vtepMAC: MAC4 });
    expect(noV6.backendV6Data).toBeUndefined();
    expect(noV6.publicIPv6).toBe('2001:db8::1');
  });

  it('IPv6-only: PublicIP 0.0.0.0, no BackendData', () => {
    const v = publishedLease({ config: net({ ipv6Cidr: 'fd00:5::/48' }), selection: { publicIPv6: sel.publicIPv6 }, nodeName: 'h1', vtepMACv6: MAC6 });
    expect(encodeLease(v)).toBe('{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"},"NodeName":"h1"}');
    const hostgw = publishedLease({ config: net({ ipv6Cidr: 'fd00:5::/48', backend: { type: 'host-gw' } }), selection: { publicIPv6: sel.publicIPv6 }, nodeName: 'h1' });
    expect(encodeLease(hostgw)).toBe('{"PublicIP":"0.0.0.0","PublicIPv6":"2001:db8::1","BackendType":"host-gw","NodeName":"h1"}');
  });
});

describe('IPv6 Network changes under a running agent', () => {
  const base: NetworkSpec = { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: { type: 'vxlan', vni: 1 } };
  const cfg = (over: Partial<NetworkSpec> = {}) => resolveNetworkOrThrow('default', { ...base, ...over });
  const held = parseLeaseKey('10.5.7.0-24&fd00:5:0:7::-64')!;

  it('applies a new IPv6 range live and says when the held IPv6 subnet falls out of it', () => {
    const c = compareConfigs(cfg(), cfg({ ipv6SubnetMin: 'fd00:5:0:2::', ipv6SubnetMax: 'fd00:5:0:100::' }), held);
    expect([c.applied, c.needsRestart, c.subnetOutOfRange]).toEqual([['ipv6SubnetMin', 'ipv6SubnetMax'], [], false]);
    expect(c.next.ipv6!.subnetMin.toString()).toBe('fd00:5:0:2::');
    expect(compareConfigs(cfg(), cfg({ ipv6SubnetMin: 'fd00:5:0:10::' }), held).subnetOutOfRange).toBe(true);
  });

  it('leaves the IPv6 CIDR, its subnet length, and adding or removing a stack to a restart', () => {
    expect(compareConfigs(cfg(), cfg({ ipv6Cidr: 'fd00:6::/48', ipv6SubnetLength: 80 }), held).needsRestart).toEqual(['ipv6Cidr', 'ipv6SubnetLength']);
    const c = compareConfigs(cfg(), cfg({ ipv6Cidr: undefined }), held);
    expect(c.needsRestart).toEqual(['ipv6Cidr']);
    expect(c.next.ipv6?.network.equals(Cidr6.parse('fd00:5::/48')!)).toBe(true); // keeps running with what it has
    expect(compareConfigs(cfg({ ipv6Cidr: undefined }), cfg(), { ipv4: held.ipv4! }).needsRestart).toEqual(['ipv6Cidr']);
  });
});
