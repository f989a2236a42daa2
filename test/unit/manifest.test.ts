import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/api/errors.js';
import { MAX_MANIFEST_BYTES, parseManifest, parseManifests } from '../../src/api/manifest.js';

const lines = (text: string, file = 'net.yaml') => parseManifest(text, file).problems.map(formatProblem);

describe('parseManifest', () => {
  it('returns typed objects for valid multi-document input, skipping empty documents', () => {
    const r = parseManifest(
      `---
# comment only
---
apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: default}
spec: {cidr: 10.5.0.0/16, backend: {type: vxlan}}
---
apiVersion: weft.io/v1alpha1
kind: Subnet
metadata:
  name: gw-1
spec:
  network: default
  cidr: 10.5.3.0/24
  node: gw-1
`,
      'a.yaml',
    );
    expect(r.problems).toEqual([]);
    expect(r.objects.map((o) => [o.ref, o.line])).toEqual([
      ['network/default', 4],
      ['subnet/gw-1', 9],
    ]);
    expect(r.objects[1]!.lineOf('spec.cidr')).toBe(15);
    expect(r.objects[1]!.lineOf('spec.publicIP')).toBe(13);
  });

  it('reports every problem of every document as FILE:LINE: kind/name: field: message, top to bottom', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: bad
spec:
  cidr: 10.7.0.0/33
  subnetLength: 31
  colour: blue
  backend:
    type: udp
    vni: -1
---
apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: bad2
spec:
  cidr: 10.8.0.1/16
  subnetMin: 10.9.0.0
  backend:
    type: host-gw
    vni: 2
---
apiVersion: weft.io/v1beta1
kind: Subnet
metadata:
  name: s1
spec:
  network: default
  cidr: 10.5.3.0/24
---
kind: Foo
`;
    expect(lines(text)).toEqual([
      'net.yaml:6: network/bad: spec.cidr: "10.7.0.0/33" is not an IPv4 CIDR (a.b.c.d/n)',
      'net.yaml:7: network/bad: spec.subnetLength: must be <= 30, got 31',
      'net.yaml:8: network/bad: spec.colour: unknown field; known fields: cidr, subnetLength, subnetMin, subnetMax, ipv6Cidr, ipv6SubnetLength, ipv6SubnetMin, ipv6SubnetMax, backend, leaseTTL',
      'net.yaml:10: network/bad: spec.backend.type: "udp" is not one of: vxlan, host-gw',
      'net.yaml:11: network/bad: spec.backend.vni: must be >= 0, got -1',
      'net.yaml:18: network/bad2: spec.cidr: "10.8.0.1/16" has host bits set; the network address is 10.8.0.0/16',
      'net.yaml:19: network/bad2: spec.subnetMin: 10.9.0.0 is outside the network 10.8.0.0/16',
      'net.yaml:22: network/bad2: spec.backend.vni: applies only to the vxlan backend',
      'net.yaml:24: subnet/s1: apiVersion: "weft.io/v1beta1" is not served; use weft.io/v1alpha1',
      'net.yaml:28: subnet/s1: spec: must set node, publicIP or both',
      'net.yaml:32: foo/(unnamed): kind: "Foo" is not a weft kind; expected Network, Subnet or Lease',
    ]);
  });

  it('points a missing field at its parent key and an unknown one at its own key', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: default
  lables: {a: b}
spec:
  backend:
    type: vxlan
`;
    expect(lines(text)).toEqual([
      'net.yaml:5: network/default: metadata.lables: unknown field; known fields: name, labels, annotations, resourceVersion, uid, generation, creationTimestamp',
      'net.yaml:6: network/default: spec.cidr: is required (or spec.ipv6Cidr, for an IPv6-only network; both for dual-stack)',
    ]);
  });

  it('checks types, names, label values, resourceVersion and timestamps', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: Not_A_Name
  labels: {a: 1}
  resourceVersion: latest
  creationTimestamp: yesterday
spec:
  cidr: [10.5.0.0/16]
  subnetLength: "24"
  backend: {type: vxlan, gbp: "yes"}
  leaseTTL: 1 day
`;
    expect(lines(text)).toEqual([
      `net.yaml:4: network/Not_A_Name: metadata.name: "Not_A_Name" is not a DNS subdomain name (lowercase letters, digits, '-' and '.')`,
      'net.yaml:5: network/Not_A_Name: metadata.labels.a: must be string, got 1',
      'net.yaml:6: network/Not_A_Name: metadata.resourceVersion: "latest" is not a decimal number',
      'net.yaml:7: network/Not_A_Name: metadata.creationTimestamp: "yesterday" is not a valid date-time',
      'net.yaml:9: network/Not_A_Name: spec.cidr: must be string, got ["10.5.0.0/16"]',
      'net.yaml:10: network/Not_A_Name: spec.subnetLength: must be integer, got "24"',
      'net.yaml:11: network/Not_A_Name: spec.backend.gbp: must be boolean, got "yes"',
      'net.yaml:12: network/Not_A_Name: spec.leaseTTL: "1 day" is not a duration like 24h, 90m or 30s',
    ]);
  });

  it('refuses network names that collide with flannel keys', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: subnets2}
spec: {cidr: 10.5.0.0/16, backend: {type: vxlan}}
`;
    expect(lines(text)).toEqual([
      `net.yaml:3: network/subnets2: metadata.name: "subnets2" collides with flannel's own keys under the prefix`,
    ]);
  });

  it('validates Subnets: node or public IP, addresses, host bits', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Subnet
metadata: {name: r1}
spec:
  network: Default
  cidr: 10.5.3.1/24
  publicIP: 300.1.1.1
  node: "-bad"
`;
    expect(lines(text)).toEqual([
      `net.yaml:5: subnet/r1: spec.network: "Default" is not a DNS label (lowercase letters, digits and '-', at most 63)`,
      'net.yaml:6: subnet/r1: spec.cidr: "10.5.3.1/24" has host bits set; the subnet address is 10.5.3.0/24',
      'net.yaml:7: subnet/r1: spec.publicIP: "300.1.1.1" is not an IPv4 address (a.b.c.d)',
      `net.yaml:8: subnet/r1: spec.node: "-bad" is not a node name (letters, digits, '.', '_' and '-')`,
    ]);
  });

  it('names Leases by their key', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Lease
metadata: {name: 10.5.3.0/24}
spec: {network: default, subnet: 10.5.3.0/24, publicIP: 192.0.2.1, backend: {type: vxlan, vtepMAC: "zz"}}
`;
    expect(lines(text)).toEqual([
      'net.yaml:3: lease/10.5.3.0/24: metadata.name: "10.5.3.0/24" is not a DNS subdomain name (lowercase letters, digits, \'-\' and \'.\')',
      'net.yaml:4: lease/10.5.3.0/24: spec.backend.vtepMAC: "zz" is not a MAC address (aa:bb:cc:dd:ee:ff)',
    ]);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(lines('kind: Network\nkind: Subnet\n')).toEqual(['net.yaml:2: invalid YAML: Map keys must be unique']);
    expect(lines('apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata: a: b\nspec: {}\n')).toEqual([
      'net.yaml:3: invalid YAML: Nested mappings are not allowed in compact mappings',
    ]);
    expect(lines('a: 1\nb:\n\t- x\n')).toEqual(['net.yaml:3: invalid YAML: Tabs are not allowed as indentation']);
    expect(lines('- a\n- b\n')).toEqual(['net.yaml:1: a document must be a mapping with apiVersion, kind, metadata and spec']);
  });

  it('keeps YAML 1.2 scalars: a time-like value stays a string and fails as one', () => {
    const text = `apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: default}
spec: {cidr: 10.5.0.0/16, backend: {type: vxlan}, leaseTTL: 12:30:00}
`;
    expect(lines(text)).toEqual(['net.yaml:4: network/default: spec.leaseTTL: "12:30:00" is not a duration like 24h, 90m or 30s']);
  });

  it('bounds alias expansion and input size', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 0; i < 8; i++) bomb.push(`${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill('*' + String.fromCharCode(97 + i)).join(', ')}]`);
    const r = lines(bomb.join('\n') + '\n');
    expect(r).toHaveLength(1);
    expect(r[0]).toMatch(/^net\.yaml:1: invalid YAML: .*alias/i);
    expect(lines('#'.repeat(MAX_MANIFEST_BYTES + 1))).toEqual([`net.yaml:1: input is larger than ${MAX_MANIFEST_BYTES} bytes`]);
  });

  it('refuses the same object twice across inputs', () => {
    const doc = 'apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata: {name: default}\nspec: {cidr: 10.5.0.0/16, backend: {type: vxlan}}\n';
    const r = parseManifests([
      { file: 'a.yaml', text: doc },
      { file: 'b.yaml', text: '# x\n' + doc },
    ]);
    expect(r.objects).toHaveLength(1);
    expect(r.problems.map(formatProblem)).toEqual(['b.yaml:2: network/default: appears twice; first at a.yaml:1']);
  });
});
