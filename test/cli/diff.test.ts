// weft diff: a unified diff of live vs applied; exit 0 no change, 1 changes.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { unifiedDiff } from '../../src/cli/unidiff.js';
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
