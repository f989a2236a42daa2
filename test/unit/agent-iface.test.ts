import { describe, expect, it } from 'vitest';
import { Ipv4 } from '../../src/alloc/cidr.js';
import { selectInterface, type HostSnapshot } from '../../src/agent/iface.js';

const ip = (s: string) => Ipv4.parse(s)!;
const host: HostSnapshot = {
  links: [
    { name: 'lo', index: 1, mtu: 65536, up: true, addresses: [{ ip: ip('127.0.0.1'), prefixLength: 8 }] },
    { name: 'eth0', index: 2, mtu: 1500, up: true, addresses: [{ ip: ip('192.0.2.1'), prefixLength: 24 }] },
    { name: 'eth1', index: 3, mtu: 9000, up: true, addresses: [{ ip: ip('198.51.100.1', ), prefixLength: 24 }, { ip: ip('198.51.100.9'), prefixLength: 24 }] },
    { name: 'docker0', index: 4, mtu: 1500, up: true, addresses: [] },
  ],
  defaultRouteDev: 'eth0',
};
const none = { ifaces: [], ifaceRegex: [] };

describe('interface selection (flanneld order)', () => {
  it('defaults to the default route interface and its first address', () => {
    const s = selectInterface(none, host);
    expect([s.uplink!.name, s.publicIP!.toString(), s.uplink!.mtu, s.how]).toEqual(['eth0', '192.0.2.1', 1500, 'default route']);
  });

  it('takes the first --iface that exists, by name or by IP', () => {
    expect(selectInterface({ ...none, ifaces: ['eth9', 'eth1'] }, host).uplink!.name).toBe('eth1');
    const byIp = selectInterface({ ...none, ifaces: ['198.51.100.9'] }, host);
    expect([byIp.uplink!.name, byIp.publicIP!.toString(), byIp.uplink!.mtu]).toEqual(['eth1', '198.51.100.9', 9000]);
  });

  it('matches --iface-regex against addresses and names', () => {
    expect(selectInterface({ ...none, ifaceRegex: ['^198\\.51\\.100\\.9$'] }, host).publicIP!.toString()).toBe('198.51.100.9');
    expect(selectInterface({ ...none, ifaceRegex: ['^eth1$'] }, host).publicIP!.toString()).toBe('198.51.100.1');
  });

  it('follows --iface-can-reach through the route lookup', () => {
    const s = selectInterface({ ...none, ifaceCanReach: '203.0.113.5' }, { ...host, canReach: { dev: 'eth1', src: ip('198.51.100.9') } });
    expect([s.uplink!.name, s.publicIP!.toString()]).toEqual(['eth1', '198.51.100.9']);
  });

  it('tries --iface, then --iface-regex, then --iface-can-reach, as flanneld (a unit file may give all three)', () => {
    const reach = { ...host, canReach: { dev: 'eth1', src: ip('198.51.100.9') } };
    expect(selectInterface({ ifaces: ['eth9'], ifaceRegex: ['^eth0$'], ifaceCanReach: '203.0.113.5' }, reach).how).toBe('--iface-regex ^eth0$ (name)');
    expect(selectInterface({ ifaces: ['eth9'], ifaceRegex: ['^wlan'], ifaceCanReach: '203.0.113.5' }, reach).how).toBe('--iface-can-reach 203.0.113.5');
    expect(selectInterface({ ifaces: ['eth0'], ifaceRegex: [], ifaceCanReach: '203.0.113.5' }, reach).how).toBe('--iface eth0');
    expect(() => selectInterface({ ifaces: ['eth9'], ifaceRegex: ['^wlan'], ifaceCanReach: '203.0.113.5' }, host)).toThrow(
      'none of --iface eth9 exists with an IPv4 address; no interface matches --iface-regex ^wlan; no interface routes to --iface-can-reach 203.0.113.5',
    );
  });

  it('allows a non-local --public-ip (NAT) only with an explicit interface', () => {
    expect(selectInterface({ ...none, ifaces: ['eth0'], publicIP: '203.0.113.7' }, host).publicIP!.toString()).toBe('203.0.113.7');
    expect(() => selectInterface({ ...none, publicIP: '203.0.113.7' }, host)).toThrow(/not a local address/);
    expect(selectInterface({ ...none, publicIP: '198.51.100.9' }, host).publicIP!.toString()).toBe('198.51.100.9');
  });

  it('explains what is missing', () => {
    expect(() => selectInterface({ ...none, ifaces: ['eth9'] }, host)).toThrow(/none of --iface eth9/);
    expect(() => selectInterface({ ...none, ifaces: ['docker0'] }, host)).toThrow(/none of --iface/);
    expect(() => selectInterface(none, { links: host.links })).toThrow(/no default route/);
    expect(() => selectInterface({ ...none, ifaceRegex: ['^wlan'] }, host)).toThrow(/no interface matches/);
  });
});
