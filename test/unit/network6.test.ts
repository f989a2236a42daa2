// IPv6 in a Network: Flannel's IPv6 defaults and checks, the config JSON flanneld reads for
// dual-stack and IPv6-only networks, and reading such configs back (Go-style keys).
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { networkRecordsOf, networkStatus } from '../../src/api/convert.js';
import { formatProblem } from '../../src/api/errors.js';
import { parseManifest } from '../../src/api/manifest.js';
import { parseLeaseKey } from '../../src/api/lease.js';
import { decodeFlannelConfig, encodeFlannelConfig, ipv6Capacity, keyFits, resolveNetwork, resolveNetworkOrThrow } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';
import { subnetRecord } from '../../src/store/store.js';

const vxlan = { type: 'vxlan' };

function problems(spec: Record<string, unknown>): string[] {
  const text = stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Network', metadata: { name: 'n1' }, spec });
  return parseManifest(text, 'f.yaml').problems.map((p) => formatProblem({ ...p, file: undefined, object: undefined }));
}

describe('IPv6 defaults (Flannel)', () => {
  it.each([
    ['fd00:5::/48', 64, 'fd00:5:0:1::', 'fd00:5:0:ffff::', 65535n],
    ['fd00::/32', 64, 'fd00:0:0:1::', 'fd00:0:ffff:ffff::', 4294967295n],
    ['fd00:5::/62', 64, 'fd00:5:0:1::', 'fd00:5:0:3::', 3n],
    ['fd00:5::/63', 65, 'fd00:5:0:0:8000::', 'fd00:5:0:1:8000::', 3n],
    ['fd00:5::/120', 122, 'fd00:5::40', 'fd00:5::c0', 3n],
    ['fd00:5::/124', 126, 'fd00:5::4', 'fd00:5::c', 3n],
  ])('%s: ipv6SubnetLength %i, min %s, max %s (%i subnets)', (cidr, len, min, max, capacity) => {
    const { config, problems } = resolveNetwork('n1', { ipv6Cidr: cidr, backend: vxlan });
    expect(problems).toEqual([]);
    const v6 = config!.ipv6!;
    expect([v6.subnetLen, String(v6.subnetMin), String(v6.subnetMax), ipv6Capacity(v6)]).toEqual([len, min, max, capacity]);
    expect(config!.ipv4).toBeUndefined();
  });

  it('a dual-stack network resolves both stacks', () => {
    const config = resolveNetworkOrThrow('n1', { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: vxlan });
    expect([String(config.ipv4!.network), config.ipv4!.subnetLen, String(config.ipv6!.network), config.ipv6!.subnetLen]).toEqual(['10.5.0.0/16', 24, 'fd00:5::/48', 64]);
  });
});

describe('IPv6 checks, with messages that name the field', () => {
  it.each<[string, Record<string, unknown>, string[]]>([
    ['neither stack', { backend: vxlan }, ['spec.cidr: is required (or spec.ipv6Cidr, for an IPv6-only network; both for dual-stack)']],
    ['not an IPv6 CIDR', { ipv6Cidr: 'fd00:5::', backend: vxlan }, ['spec.ipv6Cidr: "fd00:5::" is not an IPv6 CIDR (e.g. fd00:5::/48)']],
    ['junk that passes the pattern', { ipv6Cidr: 'fd00:::5/48', backend: vxlan }, ['spec.ipv6Cidr: "fd00:::5/48" is not an IPv6 CIDR (e.g. fd00:5::/48)']],
    ['an IPv4 CIDR as ipv6Cidr', { ipv6Cidr: '10.5.0.0/16', backend: vxlan }, ['spec.ipv6Cidr: "10.5.0.0/16" is not an IPv6 CIDR (e.g. fd00:5::/48)']],
    ['host bits', { ipv6Cidr: 'fd00:5::1/48', backend: vxlan }, ['spec.ipv6Cidr: "fd00:5::1/48" has host bits set; the network address is fd00:5::/48']],
    ['too small', { ipv6Cidr: 'fd00:5::/125', backend: vxlan }, ['spec.ipv6Cidr: network fd00:5::/125 is too small: the prefix must be /124 or shorter']],
    ['subnet length over 126', { ipv6Cidr: 'fd00:5::/48', ipv6SubnetLength: 127, backend: vxlan }, ['spec.ipv6SubnetLength: must be <= 126, got 127']],
    [
      'fewer than four subnets',
      { ipv6Cidr: 'fd00:5::/48', ipv6SubnetLength: 49, backend: vxlan },
      ['spec.ipv6SubnetLength: /49 leaves fewer than four subnets in fd00:5::/48; use /50 or longer'],
    ],
    ['min outside', { ipv6Cidr: 'fd00:5::/48', ipv6SubnetMin: 'fd00:6::', backend: vxlan }, ['spec.ipv6SubnetMin: fd00:6:: is outside the network fd00:5::/48']],
    ['max unaligned', { ipv6Cidr: 'fd00:5::/48', ipv6SubnetMax: 'fd00:5:0:9::1', backend: vxlan }, ['spec.ipv6SubnetMax: fd00:5:0:9::1 is not aligned to /64 subnets']],
    ['min not an address', { ipv6Cidr: 'fd00:5::/48', ipv6SubnetMin: 'fd00::5::1', backend: vxlan }, ['spec.ipv6SubnetMin: "fd00::5::1" is not an IPv6 address']],
    [
      'min above max',
      { ipv6Cidr: 'fd00:5::/48', ipv6SubnetMin: 'fd00:5:0:9::', ipv6SubnetMax: 'fd00:5:0:8::', backend: vxlan },
      ['spec.ipv6SubnetMin: fd00:5:0:9:: is above spec.ipv6SubnetMax fd00:5:0:8::'],
    ],
    ['IPv6 range fields without ipv6Cidr', { cidr: '10.5.0.0/16', ipv6SubnetLength: 64, backend: vxlan }, ['spec.ipv6SubnetLength: applies to the IPv6 network, and spec.ipv6Cidr is not set']],
    ['IPv4 range fields without cidr', { ipv6Cidr: 'fd00:5::/48', subnetMin: '10.5.1.0', backend: vxlan }, ['spec.subnetMin: applies to the IPv4 network, and spec.cidr is not set']],
  ])('%s', (_name, spec, expected) => {
    expect(problems(spec)).toEqual(expected);
  });

  it('accepts IPv6-only and dual-stack documents', () => {
    expect(problems({ ipv6Cidr: 'fd00:5::/48', backend: vxlan })).toEqual([]);
    expect(problems({ cidr: '10.5.0.0/16', ipv6Cidr: 'FD00:5::/48', ipv6SubnetLength: 80, ipv6SubnetMin: 'fd00:5::1:0:0:0', backend: vxlan })).toEqual([]);
  });
});

describe('the config JSON flanneld reads, with IPv6', () => {
  it.each<[string, NetworkSpec, string]>([
    [
      'dual-stack',
      { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: vxlan },
      '{"Network":"10.5.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":1}}',
    ],
    [
      'IPv6-only',
      { ipv6Cidr: 'fd00:5::/48', backend: vxlan },
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":1}}',
    ],
    [
      'every IPv6 field, written canonical',
      { ipv6Cidr: 'FD00:5::/48', ipv6SubnetLength: 80, ipv6SubnetMin: 'FD00:5:0:0:0:1:0:0', ipv6SubnetMax: 'fd00:5::9:0:0', backend: { type: 'host-gw' } },
      '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":80,"IPv6SubnetMin":"fd00:5::1:0:0","IPv6SubnetMax":"fd00:5::9:0:0","Backend":{"Type":"host-gw"}}',
    ],
    ['small IPv6 network', { ipv6Cidr: 'fd00:5::/120', backend: vxlan }, '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/120","IPv6SubnetLen":122,"Backend":{"Type":"vxlan","VNI":1}}'],
  ])('%s', (_name, spec, bytes) => {
    expect(networkRecordsOf(spec).config).toBe(bytes);
    expect(resolveNetwork('n', decodeFlannelConfig(bytes)).config).toEqual(resolveNetwork('n', spec).config);
  });

  it('leaves an IPv4-only network byte for byte as it was', () => {
    expect(encodeFlannelConfig({ cidr: '10.5.0.0/16', backend: vxlan })).toBe('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}');
  });

  it('reads configs written by hand: Go-style keys in any case, defaults for the Enable flags', () => {
    expect(decodeFlannelConfig('{"network":"10.3.0.0/16","enableipv6":true,"ipv6network":"fd00:3::/48","IPV6SUBNETLEN":72,"ipv6subnetmin":"fd00:3:0:1::","backend":{"type":"vxlan"}}')).toEqual({
      cidr: '10.3.0.0/16',
      ipv6Cidr: 'fd00:3::/48',
      ipv6SubnetLength: 72,
      ipv6SubnetMin: 'fd00:3:0:1::',
      backend: { type: 'vxlan' },
    });
    // EnableIPv6 absent (false): flanneld ignores the IPv6 range, and so does weft.
    expect(decodeFlannelConfig('{"Network":"10.3.0.0/16","IPv6Network":"fd00:3::/48"}')).toEqual({ cidr: '10.3.0.0/16', backend: { type: 'udp' } });
    // EnableIPv4 false: no Network needed, and one given is ignored.
    expect(decodeFlannelConfig('{"EnableIPv4":false,"Network":"10.3.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:3::/48"}')).toEqual({
      ipv6Cidr: 'fd00:3::/48',
      backend: { type: 'udp' },
    });
  });

  it.each([
    ['EnableIPv6 without IPv6Network', '{"Network":"10.3.0.0/16","EnableIPv6":true}', /please define a correct IPv6Network parameter in the flannel config/],
    ['EnableIPv6 not a boolean', '{"Network":"10.3.0.0/16","EnableIPv6":"yes","IPv6Network":"fd00::/48"}', /json: cannot unmarshal string into Go struct field Config.EnableIPv6 of type bool/],
    ['IPv6SubnetLen not a number', '{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetLen":"64"}', /json: cannot unmarshal string into Go struct field Config.IPv6SubnetLen of type uint/],
    ['IPv4 on by default, without Network', '{"EnableIPv6":true,"IPv6Network":"fd00::/48"}', /please define a correct Network parameter in the flannel config/],
  ])('refuses %s', (_name, text, why) => {
    expect(() => decodeFlannelConfig(text)).toThrow(why);
  });
});

describe('which keys fit, and capacity per stack', () => {
  const prefix = '/coreos.com/network/subnets/';
  const rec = (key: string, leaseId = '7') =>
    subnetRecord('default', prefix, { key: prefix + key, value: '{"PublicIP":"0.0.0.0","PublicIPv6":"fd00::1"}', modRevision: 2, createRevision: 2, version: 1, leaseId });
  const dual = resolveNetworkOrThrow('d', { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: vxlan });
  const v6only = resolveNetworkOrThrow('s', { ipv6Cidr: 'fd00:5::/48', backend: vxlan });
  const v4only = resolveNetworkOrThrow('f', { cidr: '10.5.0.0/16', backend: vxlan });

  it('a key fits when it names a fitting subnet for exactly the stacks the network has', () => {
    const k = (key: string) => parseLeaseKey(key)!;
    expect(keyFits(dual, k('10.5.3.0-24&fd00:5:0:3::-64'))).toBe(true);
    expect(keyFits(dual, k('10.5.3.0-24'))).toBe(false); // lacks its IPv6 half
    expect(keyFits(dual, k('0.0.0.0-0&fd00:5:0:3::-64'))).toBe(false);
    expect(keyFits(dual, k('10.5.3.0-24&fd00:6:0:3::-64'))).toBe(false);
    expect(keyFits(v6only, k('0.0.0.0-0&fd00:5:0:3::-64'))).toBe(true);
    expect(keyFits(v6only, k('10.5.3.0-24&fd00:5:0:3::-64'))).toBe(false);
    expect(keyFits(v6only, k('0.0.0.0-0&fd00:5::-64'))).toBe(false); // the first subnet is below the default min
    expect(keyFits(v4only, k('10.5.3.0-24'))).toBe(true);
    expect(keyFits(v4only, k('10.5.3.0-24&fd00:5:0:3::-64'))).toBe(false);
  });

  it('counts capacity and free subnets per stack, keys in use once', () => {
    const records = [rec('10.5.3.0-24&fd00:5:0:3::-64'), rec('10.5.4.0-24&fd00:5:0:4::-64', '0'), rec('10.5.5.0-24'), rec('0.0.0.0-0')];
    expect(networkStatus(dual, records)).toEqual({ capacity: 255, leases: 2, reservations: 1, free: 253, ipv6Capacity: 65535, ipv6Free: 65533 });
    expect(networkStatus(v6only, [rec('0.0.0.0-0&fd00:5:0:3::-64')])).toEqual({ leases: 1, reservations: 0, ipv6Capacity: 65535, ipv6Free: 65534 });
    const huge = resolveNetworkOrThrow('h', { ipv6Cidr: 'fd00::/8', backend: vxlan });
    expect(networkStatus(huge, []).ipv6Capacity).toBe(Number.MAX_SAFE_INTEGER);
  });
});
