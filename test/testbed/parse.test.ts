// The testbed's pure pieces: parsers of subnet.env and ping output, and name rules.
import { describe, expect, it } from 'vitest';
import { newRunId, nsName, removeLeftovers, vethLines } from '../../src/testbed/netns.js';
import { parseAnySubnetEnv, parsePingStream, parsePingSummary, parseSubnetEnv, SubnetEnvError } from '../../src/testbed/parse.js';

describe('parseSubnetEnv', () => {
  it('reads the four Flannel variables', () => {
    const env = parseSubnetEnv('FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
    expect(env.network.toString()).toBe('10.5.0.0/16');
    expect(env.subnet.toString()).toBe('10.5.7.0/24');
    expect(env.bridgeIp.toString()).toBe('10.5.7.1');
    expect(env).toMatchObject({ mtu: 1450, ipMasq: false });
  });

  it.each([
    ['missing MTU', 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_IPMASQ=false\n', /no FLANNEL_MTU/],
    ['subnet as network address', 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.0/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n', /FLANNEL_SUBNET/],
    ['hostile MTU', 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450 up; reboot\nFLANNEL_IPMASQ=false\n', /FLANNEL_MTU/],
    ['bad masq', 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=yes\n', /IPMASQ/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseSubnetEnv(text)).toThrow(SubnetEnvError);
    expect(() => parseSubnetEnv(text)).toThrow(message);
  });
});

describe('parseAnySubnetEnv', () => {
  const v6 = 'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\n';
  const tail = 'FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n';

  it('reads an IPv6-only file (no FLANNEL_NETWORK or FLANNEL_SUBNET, as flanneld writes it)', () => {
    const env = parseAnySubnetEnv(v6 + tail);
    expect(env.ipv4).toBeUndefined();
    expect([env.ipv6?.network.toString(), env.ipv6?.subnet.toString(), env.ipv6?.bridgeIp.toString()]).toEqual([
      'fd00:5::/48',
      'fd00:5:0:34::/64',
      'fd00:5:0:34::1',
    ]);
    expect(env).toMatchObject({ mtu: 1430, ipMasq: false });
    expect(() => parseSubnetEnv(v6 + tail)).toThrow(/no FLANNEL_SUBNET/);
  });

  it('reads a dual-stack file, and parseSubnetEnv keeps its IPv4 half at the top level', () => {
    const text = 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\n' + v6 + tail;
    const env = parseAnySubnetEnv(text);
    expect([env.ipv4?.subnet.toString(), env.ipv6?.subnet.toString()]).toEqual(['10.5.7.0/24', 'fd00:5:0:34::/64']);
    const file = parseSubnetEnv(text);
    expect([file.subnet.toString(), file.bridgeIp.toString(), file.ipv6?.bridgeIp.toString()]).toEqual(['10.5.7.0/24', '10.5.7.1', 'fd00:5:0:34::1']);
  });

  it.each([
    ['a subnet without its network', 'FLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\n' + tail, /no FLANNEL_IPV6_NETWORK/],
    ['the network address as the bridge address', 'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::/64\n' + tail, /FLANNEL_IPV6_SUBNET/],
    ['a hostile subnet', 'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64 dev lo\n' + tail, /FLANNEL_IPV6_SUBNET/],
    ['an IPv4 network in the IPv6 field', 'FLANNEL_IPV6_NETWORK=10.5.0.0/16\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\n' + tail, /FLANNEL_IPV6_NETWORK/],
    ['neither stack', tail, /no FLANNEL_NETWORK/],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parseAnySubnetEnv(text)).toThrow(SubnetEnvError);
    expect(() => parseAnySubnetEnv(text)).toThrow(message);
  });
});

describe('ping output', () => {
  it('reads the summary and average rtt', () => {
    const out =
      'PING 10.5.2.2 (10.5.2.2) 56(84) bytes of data.\n\n--- 10.5.2.2 ping statistics ---\n' +
      '3 packets transmitted, 2 received, 33.3333% packet loss, time 112ms\nrtt min/avg/max/mdev = 0.023/0.102/0.247/0.102 ms\n';
    expect(parsePingSummary(out)).toEqual({ sent: 3, received: 2, lost: 1, rttAvgMs: 0.102 });
  });

  it('reports why there was no summary', () => {
    expect(parsePingSummary('', 'ping: connect: Network is unreachable\n')).toEqual({
      sent: 0,
      received: 0,
      lost: 0,
      error: 'ping: connect: Network is unreachable',
    });
  });

  it('counts lost sequence numbers and treats the unanswered last one as in flight', () => {
    const out = [
      'PING 10.5.2.2 (10.5.2.2) 56(84) bytes of data.',
      '64 bytes from 10.5.2.2: icmp_seq=1 ttl=62 time=0.1 ms',
      'no answer yet for icmp_seq=2',
      '64 bytes from 10.5.2.2: icmp_seq=3 ttl=62 time=0.1 ms',
      '64 bytes from 10.5.2.2: icmp_seq=3 ttl=62 time=0.1 ms (DUP!)',
      '64 bytes from 10.5.2.2: icmp_seq=4 ttl=62 time=0.1 ms',
      '',
      '--- 10.5.2.2 ping statistics ---',
      '5 packets transmitted, 3 received, +1 duplicates, 40% packet loss, time 200ms',
      'rtt min/avg/max/mdev = 0.1/0.1/0.1/0.0 ms',
    ].join('\n');
    expect(parsePingStream(out)).toEqual({ sent: 4, received: 3, lost: 1, lostSeqs: [2], rttAvgMs: 0.1 });
  });

  it('dates lost requests from the timestamps of ping -D, and keeps the ICMP error received instead', () => {
    const out = [
      'PING 10.5.2.2 (10.5.2.2) 56(84) bytes of data.',
      '[1796544317.500000] 64 bytes from 10.5.2.2: icmp_seq=1 ttl=62 time=0.1 ms',
      '[1796544317.700000] no answer yet for icmp_seq=2',
      '[1796544317.800000] 64 bytes from 10.5.2.2: icmp_seq=4 ttl=62 time=0.1 ms',
      '[1796544318.050000] From 10.5.2.0 icmp_seq=5 Destination Host Unreachable',
      '[1796544318.100000] 64 bytes from 10.5.2.2: icmp_seq=7 ttl=62 time=0.1 ms',
      '[1796544318.200000] 64 bytes from 10.5.2.2: icmp_seq=8 ttl=62 time=0.1 ms',
      '',
      '--- 10.5.2.2 ping statistics ---',
      '8 packets transmitted, 4 received, +1 errors, 50% packet loss, time 700ms',
    ].join('\n');
    const r = parsePingStream(out, '', 100);
    expect(r.lostSeqs).toEqual([2, 3, 5, 6]);
    // seq 2: "no answer yet" is printed one interval after it was sent; 3 is one interval after
    // that; 5 and 6 are counted back from the reply to 7.
    expect(r.lostPings).toEqual([
      { seq: 2, at: 1796544317600 },
      { seq: 3, at: 1796544317700 },
      { seq: 5, at: 1796544317900, note: 'From 10.5.2.0 Destination Host Unreachable' },
      { seq: 6, at: 1796544318000 },
    ]);
    // Without the interval (or without timestamps) nothing is dated.
    expect(parsePingStream(out).lostPings).toBeUndefined();
    expect(parsePingStream(out.replace(/^\[[\d.]+\] /gm, ''), '', 100).lostPings).toBeUndefined();
  });

  it('reads ping6 replies, whose source address has colons', () => {
    const out = [
      'PING fd00:5:0:2::2(fd00:5:0:2::2) 56 data bytes',
      '64 bytes from fd00:5:0:2::2: icmp_seq=1 ttl=62 time=0.1 ms',
      '64 bytes from fd00:5:0:2::2: icmp_seq=3 ttl=62 time=0.1 ms',
      '',
      '--- fd00:5:0:2::2 ping statistics ---',
      '3 packets transmitted, 2 received, 33.3333% packet loss, time 40ms',
    ].join('\n');
    expect(parsePingStream(out)).toEqual({ sent: 3, received: 2, lost: 1, lostSeqs: [2] });
  });
});

describe('names', () => {
  it('derives namespace names from a short run id', () => {
    const id = newRunId();
    expect(id).toMatch(/^[a-z0-9]{1,12}$/);
    expect(nsName(id, 'h12')).toBe(`weft-${id}-h12`);
    expect(() => nsName('Bad Id', 'h1')).toThrow(/run id/);
    expect(() => nsName(id, 'h1; reboot')).toThrow(/role/);
  });

  it('keeps link names within 15 characters', () => {
    expect(vethLines('v-c12-3', 'weft-x-c12-3', 'eth0', { master: 'cni0', mtu: 1450 })).toEqual([
      'link add v-c12-3 mtu 1450 type veth peer name eth0 mtu 1450 netns weft-x-c12-3',
      'link set v-c12-3 master cni0 up',
    ]);
    expect(() => vethLines('a-name-longer-than-15', 'ns', 'eth0')).toThrow(/link name/);
  });

  it('refuses to remove leftovers by a prefix wider than one run', async () => {
    await expect(removeLeftovers('weft-')).rejects.toThrow(/refusing/);
    await expect(removeLeftovers('')).rejects.toThrow(/refusing/);
  });
});
