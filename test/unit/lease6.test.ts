// Lease keys and values with IPv6: flannel's exact bytes, the three key forms, hostile keys
// and the resource names they map to.
import { describe, expect, it } from 'vitest';
import { Cidr, Cidr6 } from '../../src/alloc/cidr.js';
import {
  decodeLease,
  describeLeaseKey,
  encodeLease,
  formatLeaseKey,
  leaseResourceName,
  parseLeaseKey,
  parseLeaseResourceName,
} from '../../src/api/lease.js';

const FLANNEL_DUAL =
  '{"PublicIP":"192.168.64.3","PublicIPv6":"fc00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"}}';

describe('lease values with IPv6', () => {
  it("reads a dual-stack lease in flannel's exact bytes", () => {
    const d = decodeLease(FLANNEL_DUAL);
    expect(d).toEqual({
      ok: true,
      value: {
        publicIP: '192.168.64.3',
        publicIPv6: 'fc00::1',
        backendType: 'vxlan',
        backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' },
        backendV6Data: { VNI: 1, VtepMAC: 'ca:11:22:33:44:55' },
      },
    });
    // ... and writes the same bytes back, with weft's node name after flannel's fields.
    expect(d.ok && encodeLease(d.value)).toBe(FLANNEL_DUAL);
    expect(d.ok && encodeLease({ ...d.value, nodeName: 'h1' })).toBe(FLANNEL_DUAL.slice(0, -1) + ',"NodeName":"h1"}');
  });

  it('writes an IPv6-only value as flanneld does: PublicIP 0.0.0.0, no BackendData', () => {
    const text = encodeLease({
      publicIP: '0.0.0.0',
      publicIPv6: 'fd00::5',
      backendType: 'vxlan',
      backendV6Data: { VNI: 1, VtepMAC: 'ca:11:22:33:44:55' },
      nodeName: 'h6',
    });
    expect(text).toBe('{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::5","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"},"NodeName":"h6"}');
    expect(decodeLease(text).ok).toBe(true);
    // host-gw over IPv6 only has no backend data at all.
    expect(decodeLease('{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::5","BackendType":"host-gw"}').ok).toBe(true);
  });

  it('canonicalises PublicIPv6 (RFC 5952), reads keys in any case, and treats null as none', () => {
    const d = decodeLease('{"publicip":"10.0.0.1","PUBLICIPV6":"FD00:0:0:0:0:0:0:0005","backendtype":"host-gw"}');
    expect(d.ok && d.value.publicIPv6).toBe('fd00::5');
    const none = decodeLease('{"PublicIP":"10.0.0.1","PublicIPv6":null}');
    expect(none.ok && none.value.publicIPv6).toBeUndefined();
  });

  it.each([
    ['IPv6 with a zone', '{"PublicIP":"10.0.0.1","PublicIPv6":"fe80::1%eth0"}', /PublicIPv6 .* is not an IPv6 address/],
    ['IPv6 with a line break', '{"PublicIP":"10.0.0.1","PublicIPv6":"fd00::1\\nroute del default"}', /PublicIPv6/],
    ['IPv6 with too many groups', '{"PublicIP":"10.0.0.1","PublicIPv6":"1:2:3:4:5:6:7:8:9"}', /PublicIPv6/],
    ['IPv6 as a number', '{"PublicIP":"10.0.0.1","PublicIPv6":6}', /PublicIPv6/],
    ['an IPv4 address as PublicIPv6', '{"PublicIP":"10.0.0.1","PublicIPv6":"10.0.0.2"}', /PublicIPv6/],
    ['BackendV6Data not an object', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendV6Data":"x"}`, /BackendV6Data/],
    ['BackendV6Data with a bad VNI', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendV6Data":{"VNI":-1,"VtepMAC":"ca:11:22:33:44:55"}}`, /BackendV6Data.VNI/],
    ['BackendV6Data with a multicast MAC', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"01:00:5e:00:00:01"}}`, /BackendV6Data.VtepMAC/],
    ['BackendV6Data with a MAC carrying a command', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55 dev lo"}}`, /BackendV6Data.VtepMAC/],
    ['vxlan with a real PublicIP but no BackendData', '{"PublicIP":"10.0.0.1","PublicIPv6":"fd00::1","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"}}', /no BackendData/],
    ['vxlan with PublicIP 0.0.0.0 and no IPv6 either', '{"PublicIP":"0.0.0.0","BackendType":"vxlan"}', /no BackendData/],
  ])('refuses %s', (_name, text, why) => {
    const d = decodeLease(text);
    expect(d.ok).toBe(false);
    expect(!d.ok && d.error).toMatch(why);
  });
});

describe('lease keys', () => {
  it('parses and formats the three forms', () => {
    const v4 = parseLeaseKey('10.5.52.0-24')!;
    expect([v4.ipv4?.toString(), v4.ipv6]).toEqual(['10.5.52.0/24', undefined]);
    const dual = parseLeaseKey('10.5.52.0-24&fd00:5:0:34::-64')!;
    expect([dual.ipv4?.toString(), dual.ipv6?.toString()]).toEqual(['10.5.52.0/24', 'fd00:5:0:34::/64']);
    // IPv6-only: the 0.0.0.0-0 part is flannel's placeholder, not a subnet.
    const v6 = parseLeaseKey('0.0.0.0-0&fd00:5:0:34::-64')!;
    expect([v6.ipv4, v6.ipv6?.toString()]).toEqual([undefined, 'fd00:5:0:34::/64']);
    for (const key of ['10.5.52.0-24', '10.5.52.0-24&fd00:5:0:34::-64', '0.0.0.0-0&fd00:5:0:34::-64']) {
      expect(formatLeaseKey(parseLeaseKey(key)!)).toBe(key);
    }
    expect(formatLeaseKey({ ipv6: Cidr6.parse('fd00:5:0:34::/64')! })).toBe('0.0.0.0-0&fd00:5:0:34::-64');
    expect(() => formatLeaseKey({})).toThrow();
    expect(describeLeaseKey(dual)).toBe('10.5.52.0/24 + fd00:5:0:34::/64');
  });

  it.each([
    ['a lone placeholder', '0.0.0.0-0'],
    ['a placeholder with nothing after &', '0.0.0.0-0&'],
    ['a non-canonical IPv6 half (leading zeros)', '10.5.52.0-24&fd00:0005:0:34::-64'],
    ['a non-canonical IPv6 half (uppercase)', '10.5.52.0-24&FD00:5:0:34::-64'],
    ['a non-canonical IPv6 half (zeros not compressed)', '10.5.52.0-24&fd00:5:0:34:0:0:0:0-64'],
    ['IPv6 host bits', '10.5.52.0-24&fd00:5:0:34::1-64'],
    ['an IPv6 prefix over 128', '10.5.52.0-24&fd00::-129'],
    ['an IPv6 half that is IPv4', '10.5.52.0-24&10.5.53.0-24'],
    ['a zone in the IPv6 half', '10.5.52.0-24&fe80::%eth0-64'],
    ['two IPv6 halves', '10.5.52.0-24&fd00::-64&fd01::-64'],
    ['an IPv6 half alone', 'fd00:5:0:34::-64'],
    ['an empty IPv4 half', '&fd00:5:0:34::-64'],
    ['IPv4 host bits before a good IPv6 half', '10.5.52.1-24&fd00:5:0:34::-64'],
    ['garbage after the IPv4 part', '10.5.52.0-24&junk'],
    ['a line break', '10.5.52.0-24&fd00::-64\n'],
    ['garbage', '../../config'],
    ['empty', ''],
  ])('refuses %s', (_name, key) => {
    expect(parseLeaseKey(key)).toBeUndefined();
  });
});

describe('resource names of lease keys', () => {
  it('maps keys with an IPv6 half to valid DNS subdomain names, and back', () => {
    const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
    const cases: [string, string][] = [
      ['10.5.52.0-24', '10.5.52.0-24'],
      ['10.5.52.0-24&fd00:5:0:34::-64', '10.5.52.0-24.fd00-5-0-34-0-0-0-0-64'],
      ['0.0.0.0-0&fd00:5:0:34::-64', 'fd00-5-0-34-0-0-0-0-64'],
      ['0.0.0.0-0&::-64', '0-0-0-0-0-0-0-0-64'],
      ['10.5.52.0-24&ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc-126', '10.5.52.0-24.ffff-ffff-ffff-ffff-ffff-ffff-ffff-fffc-126'],
    ];
    for (const [key, name] of cases) {
      const k = parseLeaseKey(key)!;
      expect(leaseResourceName(k)).toBe(name);
      expect(name).toMatch(DNS_SUBDOMAIN);
      expect(name.length).toBeLessThanOrEqual(253);
      expect(formatLeaseKey(parseLeaseResourceName(name)!)).toBe(key);
      // The key itself is accepted where a name is expected.
      expect(formatLeaseKey(parseLeaseResourceName(key)!)).toBe(key);
    }
  });

  it('refuses names that map to no key, or to one in a non-canonical way', () => {
    for (const bad of ['fd00-5-0-34-0-0-0-64', 'fd00-05-0-34-0-0-0-0-64', 'fd00-5-0-34-0-0-0-1-64', '10.5.52.1-24.fd00-5-0-34-0-0-0-0-64', '10.5.52.0-24.junk', 'x']) {
      expect(parseLeaseResourceName(bad), bad).toBeUndefined();
    }
    expect(parseLeaseResourceName('10.5.52.0-24')?.ipv4?.equals(Cidr.parse('10.5.52.0/24')!)).toBe(true);
  });
});
