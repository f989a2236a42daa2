// Flannel's defaults and checks, as a user meets them: through a manifest, with the message
// naming the field, and the exact config JSON a flanneld would read.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { networkRecordsOf } from '../../src/api/convert.js';
import { formatProblem } from '../../src/api/errors.js';
import { parseManifest } from '../../src/api/manifest.js';
import { decodeFlannelConfig, ipv4Capacity, resolveNetwork } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';

function manifest(spec: Record<string, unknown>): string {
  return stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Network', metadata: { name: 'n1' }, spec });
}

/** The problems for one spec, as "field: message" (the line is checked elsewhere). */
function problems(spec: Record<string, unknown>): string[] {
  return parseManifest(manifest(spec), 'f.yaml').problems.map((p) => formatProblem({ ...p, file: undefined, object: undefined }));
}

const vxlan = { type: 'vxlan' };

describe('Flannel defaults', () => {
  it.each([
    ['10.5.0.0/16', 24, '10.5.1.0', '10.5.255.0', 255],
    ['10.0.0.0/8', 24, '10.0.1.0', '10.255.255.0', 65535],
    ['10.5.0.0/22', 24, '10.5.1.0', '10.5.3.0', 3],
    ['10.5.0.0/23', 25, '10.5.0.128', '10.5.1.128', 3],
    ['10.5.0.0/26', 28, '10.5.0.16', '10.5.0.48', 3],
    ['10.5.0.0/28', 30, '10.5.0.4', '10.5.0.12', 3],
  ])('%s: subnetLength %i, subnetMin %s, subnetMax %s (%i subnets)', (cidr, len, min, max, capacity) => {
    const { config, problems } = resolveNetwork('n1', { cidr, backend: vxlan });
    expect(problems).toEqual([]);
    const v4 = config!.ipv4!;
    expect([v4.subnetLen, String(v4.subnetMin), String(v4.subnetMax), ipv4Capacity(v4)]).toEqual([len, min, max, capacity]);
  });

  it('vxlan: VNI 1, kernel port, no MTU, no GBP, no direct routing; lease TTL 24h', () => {
    const { config } = resolveNetwork('n1', { cidr: '10.5.0.0/16', backend: vxlan });
    expect(config!.backend).toEqual({ type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false });
    expect(config!.leaseTTLms).toBe(24 * 3600 * 1000);
  });

  it('documents pass the schema when only cidr and backend type are given', () => {
    expect(problems({ cidr: '10.5.0.0/16', backend: vxlan })).toEqual([]);
  });
});

describe('Flannel checks, with messages that name the field', () => {
  it.each<[string, Record<string, unknown>, string[]]>([
    ['not a CIDR', { cidr: '10.5.0.0', backend: vxlan }, ['spec.cidr: "10.5.0.0" is not an IPv4 CIDR (a.b.c.d/n)']],
    ['host bits', { cidr: '10.5.1.0/16', backend: vxlan }, ['spec.cidr: "10.5.1.0/16" has host bits set; the network address is 10.5.0.0/16']],
    ['network too small', { cidr: '10.5.0.0/29', backend: vxlan }, ['spec.cidr: network 10.5.0.0/29 is too small: the prefix must be /28 or shorter']],
    ['subnetLength over 30', { cidr: '10.5.0.0/16', subnetLength: 31, backend: vxlan }, ['spec.subnetLength: must be <= 30, got 31']],
    [
      'fewer than four subnets',
      { cidr: '10.5.0.0/16', subnetLength: 17, backend: vxlan },
      ['spec.subnetLength: /17 leaves fewer than four subnets in 10.5.0.0/16; use /18 or longer'],
    ],
    ['subnetMin outside', { cidr: '10.5.0.0/16', subnetMin: '10.6.0.0', backend: vxlan }, ['spec.subnetMin: 10.6.0.0 is outside the network 10.5.0.0/16']],
    ['subnetMax unaligned', { cidr: '10.5.0.0/16', subnetMax: '10.5.9.128', backend: vxlan }, ['spec.subnetMax: 10.5.9.128 is not aligned to /24 subnets']],
    [
      'subnetMin above subnetMax',
      { cidr: '10.5.0.0/16', subnetMin: '10.5.9.0', subnetMax: '10.5.8.0', backend: vxlan },
      ['spec.subnetMin: 10.5.9.0 is above spec.subnetMax 10.5.8.0'],
    ],
    ['subnetMin not an address', { cidr: '10.5.0.0/16', subnetMin: '10.5.9', backend: vxlan }, ['spec.subnetMin: "10.5.9" is not an IPv4 address (a.b.c.d)']],
    ['backend missing', { cidr: '10.5.0.0/16' }, ['spec.backend: is required']],
    ['backend type missing', { cidr: '10.5.0.0/16', backend: {} }, ['spec.backend.type: is required']],
    ['udp backend', { cidr: '10.5.0.0/16', backend: { type: 'udp' } }, ['spec.backend.type: "udp" is not one of: vxlan, host-gw']],
    [
      'vxlan fields on host-gw',
      { cidr: '10.5.0.0/16', backend: { type: 'host-gw', port: 4789, directRouting: true } },
      ['spec.backend.port: applies only to the vxlan backend', 'spec.backend.directRouting: applies only to the vxlan backend'],
    ],
    ['VNI range', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 16777216 } }, ['spec.backend.vni: must be <= 16777215, got 16777216']],
    ['port range', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', port: 70000 } }, ['spec.backend.port: must be <= 65535, got 70000']],
    ['MTU range', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', mtu: 100 } }, ['spec.backend.mtu: must be >= 118, got 100']],
    ['MTU range (high)', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', mtu: 65536 } }, ['spec.backend.mtu: must be <= 65535, got 65536']],
    ['lease TTL form', { cidr: '10.5.0.0/16', backend: vxlan, leaseTTL: '1d' }, ['spec.leaseTTL: "1d" is not a duration like 24h, 90m or 30s']],
    ['lease TTL range', { cidr: '10.5.0.0/16', backend: vxlan, leaseTTL: '2s' }, ['spec.leaseTTL: 2s is out of range (5s to 720h)']],
    ['lease TTL range (long)', { cidr: '10.5.0.0/16', backend: vxlan, leaseTTL: '721h' }, ['spec.leaseTTL: 721h is out of range (5s to 720h)']],
  ])('%s', (_name, spec, expected) => {
    expect(problems(spec)).toEqual(expected);
  });

  it('reports the rules the schema cannot see when resolveNetwork is called directly', () => {
    const r = resolveNetwork('n1', { cidr: '10.5.0.0/16', subnetLength: 31, backend: { type: 'udp' } } as NetworkSpec);
    expect(r.problems.map((p) => `${p.field}: ${p.message}`)).toEqual([
      'spec.subnetLength: must be an integer no larger than 30, got 31',
      'spec.backend.type: "udp" is not supported; use vxlan or host-gw',
    ]);
  });
});

describe('the config JSON flanneld reads', () => {
  it.each<[string, NetworkSpec, string]>([
    ['minimal vxlan', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }, '{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}'],
    [
      'every vxlan field',
      { cidr: '10.5.0.0/16', subnetLength: 26, subnetMin: '10.5.1.0', subnetMax: '10.5.9.0', backend: { type: 'vxlan', vni: 7, port: 4789, mtu: 1400, gbp: true, directRouting: true }, leaseTTL: '1h' },
      '{"Network":"10.5.0.0/16","SubnetLen":26,"SubnetMin":"10.5.1.0","SubnetMax":"10.5.9.0","Backend":{"Type":"vxlan","VNI":7,"Port":4789,"MTU":1400,"GBP":true,"DirectRouting":true}}',
    ],
    ['host-gw', { cidr: '10.6.0.0/16', backend: { type: 'host-gw' } }, '{"Network":"10.6.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}}'],
    ['small network', { cidr: '10.5.0.0/24', backend: { type: 'vxlan' } }, '{"Network":"10.5.0.0/24","SubnetLen":26,"Backend":{"Type":"vxlan","VNI":1}}'],
  ])('%s', (_name, spec, bytes) => {
    const records = networkRecordsOf(spec);
    expect(records.config).toBe(bytes);
    // leaseTTL is weft's: it lives in weft's metadata, never in flannel's config.
    expect(records.leaseTTL).toBe(spec.leaseTTL);
    // Reading the bytes back gives the same config, with the defaults made explicit.
    expect(resolveNetwork('n', decodeFlannelConfig(bytes)).config).toEqual(resolveNetwork('n', { ...spec, leaseTTL: undefined } as NetworkSpec).config);
  });

  it('reads what operators wrote with etcdctl, keys in any case', () => {
    expect(decodeFlannelConfig('{"network":"10.3.0.0/16","backend":{"type":"vxlan","vni":4}}')).toEqual({
      cidr: '10.3.0.0/16',
      backend: { type: 'vxlan', vni: 4 },
    });
  });
});
