// weft diff: a unified diff of live vs applied; exit 0 no change, 1 changes.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { MAX_EDIT_LINES, unifiedDiff } from '../../src/cli/unidiff.js';
import { etcdFlags, testPrefix, weft } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

describe('unifiedDiff', () => {
  it('is empty for equal texts and follows diff -u otherwise', () => {
    expect(unifiedDiff('a\nb\n', 'a\nb\n', 'x', 'y')).toBe('');
    const before = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'].join('\n') + '\n';
    const after = before.replace('2\n', 'two\n').replace('11\n', '');
    expect(unifiedDiff(before, after, 'live', 'applied')).toBe(
      ['--- live', '+++ applied', '@@ -1,5 +1,5 @@', ' 1', '-2', '+two', ' 3', ' 4', ' 5', '@@ -8,5 +8,4 @@', ' 8', ' 9', ' 10', '-11', ' 12', ''].join('\n'),
    );
  });

  it('shows a new object as all additions', () => {
    expect(unifiedDiff('', 'a\nb\n', 'live', 'applied')).toBe('--- live\n+++ applied\n@@ -0,0 +1,2 @@\n+a\n+b\n');
    expect(unifiedDiff('a\nb\n', '', 'live', 'applied')).toBe('--- live\n+++ applied\n@@ -1,2 +0,0 @@\n-a\n-b\n');
  });

  it('does not show a missing final newline as a change', () => {
    expect(unifiedDiff('a\nb', 'a\nc\n', 'x', 'y')).toBe('--- x\n+++ y\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n');
  });

  it('finds a small change in a large text', () => {
    const before = Array.from({ length: 100_000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const after = before.replace('line 50000\n', 'changed\n');
    expect(unifiedDiff(before, after, 'x', 'y')).toBe(
      '--- x\n+++ y\n@@ -49998,7 +49998,7 @@\n line 49997\n line 49998\n line 49999\n-line 50000\n+changed\n line 50001\n line 50002\n line 50003\n',
    );
  });

  it('bounds the work: past MAX_EDIT_LINES changes it shows a whole replacement', () => {
    // Quadratic memory would need n*m cells here (2.5e9); the bounded search gives up instead.
    const n = 50_000;
    const before = Array.from({ length: n }, (_, i) => `old ${i}`).join('\n') + '\n';
    const after = Array.from({ length: n }, (_, i) => `new ${i}`).join('\n') + '\n';
    const out = unifiedDiff(before, after, 'x', 'y').split('\n');
    expect(out.slice(0, 4)).toEqual(['--- x', '+++ y', `@@ -1,${n} +1,${n} @@`, '-old 0']);
    expect(out[2 + n + 1]).toBe('+new 0');
    expect(out.length).toBe(3 + 2 * n + 1);
    // Just under the bound the shortest edit is still found.
    const some = before.split('\n').map((l, i) => (i % 100 === 0 && l ? `changed ${i}` : l)).join('\n');
    expect(unifiedDiff(before, some, 'x', 'y').split('\n').filter((l) => l.startsWith('-')).length).toBe(1 + n / 100);
    expect(MAX_EDIT_LINES).toBeGreaterThan((2 * n) / 100);
  });
});

describe('weft diff', () => {
  const fx = useEtcd();

  const net = (vni: number, labels?: Record<string, string>) =>
    stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Network', metadata: { name: 'default', ...(labels ? { labels } : {}) }, spec: { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni } } });

  it('exits 1 with a diff for a new or changed object, 0 once applied, and never writes', async () => {
    const prefix = testPrefix();
    const flags = etcdFlags(fx.etcd.endpoint, prefix);
    const diff = (yaml: string) => weft(['diff', '-f', '-', ...flags], { stdin: yaml });

    const created = await diff(net(1));
    expect(created.code).toBe(1);
    expect(created.stdout).toBe(
      [
        '--- live/network.weft.io/default',
        '+++ applied/network.weft.io/default',
        '@@ -0,0 +1,11 @@',
        '+apiVersion: weft.io/v1alpha1',
        '+kind: Network',
        '+metadata:',
        '+  name: default',
        '+  generation: 1',
        '+spec:',
        '+  cidr: 10.5.0.0/16',
        '+  subnetLength: 24',
        '+  backend:',
        '+    type: vxlan',
        '+    vni: 1',
        '',
      ].join('\n'),
    );
    expect((await fx.admin.list(prefix + '/')).kvs).toEqual([]);

    await weft(['apply', '-f', '-', ...flags], { stdin: net(1) });
    expect(await diff(net(1))).toEqual({ code: 0, stdout: '', stderr: '' });

    const changed = await diff(net(2, { tier: 'gold' }));
    expect(changed.code).toBe(1);
    expect(changed.stdout).toBe(
      [
        '--- live/network.weft.io/default',
        '+++ applied/network.weft.io/default',
        '@@ -2,10 +2,12 @@',
        ' kind: Network',
        ' metadata:',
        '   name: default',
        '-  generation: 1',
        '+  generation: 2',
        '+  labels:',
        '+    tier: gold',
        ' spec:',
        '   cidr: 10.5.0.0/16',
        '   subnetLength: 24',
        '   backend:',
        '     type: vxlan',
        '-    vni: 1',
        '+    vni: 2',
        '',
      ].join('\n'),
    );
    const invalid = await diff(net(1).replace('vni: 1', 'vni: -1'));
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toBe('<stdin>:9: network/default: spec.backend.vni: must be >= 0, got -1\n');
  });
});
