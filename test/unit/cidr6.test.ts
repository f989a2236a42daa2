import { describe, expect, it } from 'vitest';
import { Cidr, Cidr6, Ipv4, Ipv6, netOf, parseIp, parseNet } from '../../src/alloc/cidr.js';

describe('Ipv6', () => {
  it('prints the RFC 5952 canonical form whatever form it was given', () => {
    expect(Ipv6.parse('FD00:0005:0000:0034:0000:0000:0000:0000')!.toString()).toBe('fd00:5:0:34::');
    expect(Ipv6.parse('2001:db8:0:0:1:0:0:1')!.toString()).toBe('2001:db8::1:0:0:1');
    expect(Ipv6.parse('2001:db8:0:1:1:1:1:1')!.toString()).toBe('2001:db8:0:1:1:1:1:1');
    expect(Ipv6.parse('::')!.toString()).toBe('::');
  });

  it('refuses zones, prefixes, dotted quads and junk', () => {
    for (const bad of ['fe80::1%eth0', 'fd00::/64', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8:9', 'fd00::g', '', ' ::1', 'fd00::1\n', 7, null]) {
      expect(Ipv6.parse(bad), String(bad)).toBeUndefined();
    }
  });

  it('never compares equal to an IPv4 address', () => {
    expect(Ipv6.parse('::a05:1')!.equals(Ipv4.parse('10.5.0.1')!)).toBe(false);
    expect(Ipv4.parse('10.5.0.1')!.equals(Ipv6.parse('::a05:1')!)).toBe(false);
  });
});

describe('Cidr6', () => {
  it('masks host bits unless strict', () => {
    expect(Cidr6.parse('fd00:5::1/48')!.toString()).toBe('fd00:5::/48');
    expect(Cidr6.parse('fd00:5::1/48', { strict: true })).toBeUndefined();
    expect(Cidr6.parse('fd00:5::/129')).toBeUndefined();
    expect(Cidr6.parse('fd00:5::/048')).toBeUndefined();
  });

  it('contains, overlaps and aligns like the IPv4 block, and never across families', () => {
    const net = Cidr6.parse('fd00:5::/48')!;
    const sub = Cidr6.parse('fd00:5:0:34::/64')!;
    expect(net.contains(sub)).toBe(true);
    expect(net.contains(Ipv6.parse('fd00:5:0:ffff::1')!)).toBe(true);
    expect(net.contains(Ipv6.parse('fd00:6::')!)).toBe(false);
    expect(sub.overlaps(net)).toBe(true);
    expect(sub.alignedTo(64)).toBe(true);
    expect(Cidr6.parse('fd00:5:0:34:8000::/65')!.alignedTo(64)).toBe(false);
    expect(net.size).toBe(1n << 80n);
    expect(net.contains(Cidr.parse('10.0.0.0/8')!)).toBe(false);
    expect(Cidr.parse('0.0.0.0/0')!.overlaps(net)).toBe(false);
  });

  it('round-trips Flannel key halves in canonical form only', () => {
    const sub = Cidr6.parse('fd00:5:0:34::/64')!;
    expect(sub.toKey()).toBe('fd00:5:0:34::-64');
    expect(Cidr6.fromKey('fd00:5:0:34::-64')!.equals(sub)).toBe(true);
    expect(Cidr6.fromKey('fd00:0005:0:34::-64')).toBeUndefined();
    expect(Cidr6.fromKey('FD00:5:0:34::-64')).toBeUndefined();
    expect(Cidr6.fromKey('fd00:5:0:34::1-64')).toBeUndefined();
    expect(sub.gateway.toString()).toBe('fd00:5:0:34::1');
  });

  it('parses either family through one entry point', () => {
    expect(parseIp('10.5.0.1')!.family).toBe(4);
    expect(parseIp('fd00::1')!.family).toBe(6);
    expect(parseNet('fd00::/64')!.family).toBe(6);
    expect(netOf(Ipv6.parse('fd00:1::5')!, 64).toString()).toBe('fd00:1::/64');
    expect(netOf(Ipv4.parse('10.1.2.3')!, 24).toString()).toBe('10.1.2.0/24');
  });
});
