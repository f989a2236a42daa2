import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CRD_DIR, CRD_FILES, closeObjects, PATTERN_NOUNS, schemaFor, schemas } from '../../src/api/schema.js';
import { KINDS } from '../../src/api/types.js';

function walk(node: unknown, visit: (n: Record<string, unknown>, path: string) => void, path = ''): void {
  if (Array.isArray(node)) node.forEach((n, i) => walk(n, visit, `${path}[${i}]`));
  else if (node && typeof node === 'object') {
    visit(node as Record<string, unknown>, path);
    for (const [k, v] of Object.entries(node)) walk(v, visit, `${path}.${k}`);
  }
}

describe('CRDs in crds/', () => {
  it.each(KINDS)('%s is a cluster-scoped apiextensions.k8s.io/v1 CRD in weft.io/v1alpha1', (kind) => {
    const crd = parse(readFileSync(`${CRD_DIR}${CRD_FILES[kind]}`, 'utf8'));
    const plural = `${kind.toLowerCase()}s`;
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(crd.metadata.name).toBe(`${plural}.weft.io`);
    expect(crd.spec).toMatchObject({ group: 'weft.io', scope: 'Cluster', names: { kind, plural } });
    const v = crd.spec.versions[0];
    expect(v).toMatchObject({ name: 'v1alpha1', served: true, storage: true });
    expect(v.additionalPrinterColumns.length).toBeGreaterThan(3);
    expect(v.schema.openAPIV3Schema.properties.spec.required.length).toBeGreaterThan(0);
  });

  it('stay installable: no additionalProperties next to properties, metadata left to the apiserver', () => {
    for (const kind of KINDS) {
      const s = schemaFor(kind).openAPIV3Schema as { properties: { metadata: unknown } };
      expect(s.properties.metadata).toEqual({ type: 'object' });
      walk(s, (n, path) => {
        expect(n.properties && n.additionalProperties !== undefined ? path : '').toBe('');
      });
    }
  });

  it('name every pattern in words, so a mismatch never prints a regex', () => {
    const seen: string[] = [];
    for (const kind of KINDS) {
      walk(schemaFor(kind).openAPIV3Schema, (n) => {
        if (typeof n.pattern === 'string') seen.push(n.pattern);
      });
    }
    expect(seen.length).toBeGreaterThan(8);
    for (const p of seen) expect(PATTERN_NOUNS[p], p).toBeDefined();
  });

  it('compile once per process', () => {
    expect(schemas()).toBe(schemas());
    expect([...schemas().keys()]).toEqual(['Network', 'Subnet', 'Lease']);
    expect(schemaFor('Network').shortNames).toEqual(['net']);
  });
});

describe('closeObjects', () => {
  it('closes objects that list properties, but not maps or preserve-unknown-fields objects', () => {
    const closed = closeObjects({
      type: 'object',
      required: ['a'],
      properties: {
        a: { type: 'object', properties: { b: { type: 'string' } } },
        m: { type: 'object', additionalProperties: { type: 'string' } },
        p: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: { c: { type: 'string' } } },
      },
    }) as Record<string, any>;
    expect(closed.additionalProperties).toBe(false);
    expect(closed.properties.a.additionalProperties).toBe(false);
    expect(closed.properties.m.additionalProperties).toEqual({ type: 'string' });
    expect(closed.properties.p.additionalProperties).toBeUndefined();
    expect(closed.required).toEqual(['a']);
  });
});

describe('compiled validators', () => {
  const network = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'default' }) => ({
    apiVersion: 'weft.io/v1alpha1',
    kind: 'Network',
    metadata,
    spec,
  });

  it('accept a minimal vxlan network and a full host-gw network', () => {
    const v = schemaFor('Network').validate;
    expect(v(network({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }))).toBe(true);
    expect(
      v(network({ cidr: '10.6.0.0/16', subnetLength: 24, subnetMin: '10.6.1.0', subnetMax: '10.6.9.0', backend: { type: 'host-gw' }, leaseTTL: '1h30m' })),
    ).toBe(true);
  });

  it('reject unknown fields at every level, metadata included', () => {
    const v = schemaFor('Network').validate;
    expect(v({ ...network({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', colour: 1 } }, { name: 'x', nmae: 'y' }), extra: 1 })).toBe(false);
    const extras = v.errors!.filter((e) => e.keyword === 'additionalProperties').map((e) => `${e.instancePath}:${(e.params as { additionalProperty: string }).additionalProperty}`);
    expect(extras.sort()).toEqual(['/metadata:nmae', '/spec/backend:colour', ':extra']);
  });

  it('check int32 ranges, MAC and date-time formats in Leases', () => {
    const v = schemaFor('Lease').validate;
    const lease = (backend: Record<string, unknown>, expiry = '2030-01-01T00:00:00Z') => ({
      apiVersion: 'weft.io/v1alpha1',
      kind: 'Lease',
      metadata: { name: '10.5.3.0-24' },
      spec: { network: 'default', subnet: '10.5.3.0/24', publicIP: '192.0.2.1', backend, expiry },
    });
    expect(v(lease({ type: 'vxlan', vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' }))).toBe(true);
    expect(v(lease({ type: 'vxlan', vni: 16777216, vtepMAC: 'c6:d2:32:6f:8f' }, 'tomorrow'))).toBe(false);
    expect(v.errors!.map((e) => e.keyword).sort()).toEqual(['format', 'maximum', 'pattern']);
  });
});
