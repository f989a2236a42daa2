// Hostile state, unit level (issue 14): log lines and subnet.env's temporary file.
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { planAcquisition } from '../../src/agent/acquire-plan.js';
import { writeSubnetEnv } from '../../src/agent/subnet-env.js';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { freeSubnets } from '../../src/alloc/candidates.js';
import { MAX_PROBLEMS_PER_DOCUMENT, parseManifest } from '../../src/api/manifest.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';
import { createLogger } from '../../src/log.js';
import { subnetRecord } from '../../src/store/store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('text logs', () => {
  it('escape C0, C1 and bidi characters from a lease key, bare or quoted', () => {
    const lines: string[] = [];
    const log = createLogger({ format: 'text', write: (l) => lines.push(l) });
    log.warn('ignoring unusable lease', { key: '10.5.1.0-24\u001b[2J\u0085\u202e', other: 'a b\u009b31m' });
    log.warn('msg \u001b]0;x\u0007 \u202e', {});
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(lines[0]).toContain('\\u001b[2J\\u0085\\u202e');
    expect(lines[0]).toContain('\\u009b31m');
  });
});

describe('subnet.env', () => {
  it('never writes through a symlink planted at a temporary name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    // The names main used: .subnet.env.<pid>.tmp
    symlinkSync(victim, join(dir, `.subnet.env.${process.pid}.tmp`));
    const path = join(dir, 'subnet.env');
    expect(writeSubnetEnv(path, 'FLANNEL_MTU=1450\n')).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(path, 'utf8')).toBe('FLANNEL_MTU=1450\n');
    // Nothing of ours left behind; the planted link is the attacker's, left as it was.
    expect(readdirSync(dir).sort()).toEqual([`.subnet.env.${process.pid}.tmp`, 'subnet.env', 'victim'].sort());
  });
});

describe('allocation', () => {
  const prefix = '/coreos.com/network/subnets/';
  const rec = (key: string, value: string) =>
    subnetRecord('default', prefix, { key: prefix + key, value, modRevision: 5, createRevision: 5, version: 1, leaseId: '0' });

  it('a well-formed key of another length (10.5.0.0-16) does not block every join', () => {
    const config = resolveNetworkOrThrow('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    const plan = planAcquisition(config, [rec('10.5.0.0-16', '{"PublicIP":"0.0.0.0"}')], { nodeName: 'h1', publicIP: Ipv4.parse('192.0.2.1')! }, undefined, () => 0);
    expect(plan.action).toBe('create');
    expect(plan.action === 'create' && plan.subnets.ipv4!.toString()).toBe('10.5.1.0/24');
  });

  it('one attempt in a /8 of /30s does not test each candidate against a key spanning half of it', () => {
    const network = Cidr.parse('10.0.0.0/8')!;
    let overlapTests = 0;
    const half = Cidr.parse('10.0.0.0/9')!;
    // Counts the per-candidate overlap tests main did (two million here, 454 ms per attempt).
    const spy = new Proxy(half, {
      get(target, prop, receiver) {
        if (prop === 'overlaps') return (o: Cidr) => (overlapTests++, target.overlaps(o));
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const free = freeSubnets({ network, subnetLen: 30, min: network.first + 4, max: network.last - 3 }, [spy], 100);
    expect(free).toHaveLength(100);
    expect(free[0]!.toString()).toBe('10.128.0.0/30');
    expect(overlapTests).toBeLessThan(100);
  });
});

describe('manifest validation is bounded', () => {
  const withKeys = (n: number, style: 'block' | 'json' = 'block') => {
    const head = 'apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata:\n  name: x\nspec:\n  cidr: 10.5.0.0/16\n  backend: {type: vxlan}\n';
    if (style === 'json') {
      return `{"apiVersion":"weft.io/v1alpha1","kind":"Network","metadata":{"name":"x"},"spec":{"cidr":"10.5.0.0/16","backend":{"type":"vxlan"},${Array.from({ length: n }, (_, i) => `"k${i}":1`).join(',')}}}`;
    }
    return head + Array.from({ length: n }, (_, i) => `  k${i}: 1\n`).join('');
  };

  // main took 118-195 s of CPU on the first input (the yaml library's unique-keys check, then
  // a located problem per key); the test's 5 s deadline is a bound, not a measurement.
  it('refuses 64,000 unknown keys (757 KB) with one line, without parsing', () => {
    for (const style of ['block', 'json'] as const) {
      const r = parseManifest(withKeys(64_000, style), 'big.yaml');
      expect(r.objects).toEqual([]);
      expect(r.problems.map((p) => p.message)).toEqual(['invalid YAML: a document with more than 10000 mapping keys is not a manifest; refused without parsing it']);
    }
  });

  it('refuses an input of more than 20,000 keys in all (4 MiB of small documents) before parsing', () => {
    const sub = (i: number) => `---\napiVersion: weft.io/v1alpha1\nkind: Subnet\nmetadata:\n  name: s${i}\nspec:\n  network: default\n  cidr: 10.5.${i % 256}.0/24\n  node: n${i}\n`;
    const text = Array.from({ length: 5000 }, (_, i) => sub(i)).join('');
    const r = parseManifest(text, 'subnets.yaml');
    expect(r.problems.map((p) => p.message)).toEqual(['invalid YAML: more than 20000 mapping keys in one input; split it into several files (refused without parsing it)']);
    expect(parseManifest(Array.from({ length: 100 }, (_, i) => sub(i)).join(''), 'ok.yaml').objects).toHaveLength(100);
  });

  it('reports at most a hundred problems per document, and says how many more', () => {
    const r = parseManifest(withKeys(3000), 'many.yaml');
    expect(r.problems).toHaveLength(MAX_PROBLEMS_PER_DOCUMENT + 1);
    expect(r.problems.filter((p) => /more problems in this document not shown/.test(p.message)).map((p) => p.message)).toEqual(['2900 more problems in this document not shown']);
  });

  it('still finds a duplicate key, at its second line, and does not count values with colons as keys', () => {
    const r = parseManifest('apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata:\n  name: x\nspec:\n  cidr: 10.5.0.0/16\n  cidr: 10.6.0.0/16\n  backend: {type: vxlan}\n', 'dup.yaml');
    expect(r.problems.map((p) => [p.line, p.message])).toEqual([[7, 'invalid YAML: Map keys must be unique']]);
    const colons = `apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata:\n  name: x\n  annotations:\n    a: "${'fd00::1 02:00:00:00:00:01 12:30:00 '.repeat(2000)}"\nspec:\n  ipv6Cidr: fd00:5::/48\n  backend: {type: vxlan}\n`;
    expect(parseManifest(colons, 'colons.yaml').problems).toEqual([]);
  });
});
