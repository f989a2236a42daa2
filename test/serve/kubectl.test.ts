// The real kubectl against `weft serve` and a real etcd: apply (created, unchanged,
// configured), every output format, diff, explain, server-side apply with two field
// managers, edit, delete and its refusals, unknown fields, get -w. What kubectl writes is
// what `weft apply` writes, and `weft get` reads it.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import { cliEnv } from '../helpers/cli-env.js';
import { REPO } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';
import { useServe } from './serve-fixture.js';

const fx = useEtcd('serve');
const s = useServe(fx, 'kubectl');
const kubectl = (...args: string[]) => s.kubectl.run(args);

async function ok(...args: string[]): Promise<string> {
  const r = await kubectl(...args);
  expect(r.code, `kubectl ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

function file(name: string, text: string): string {
  const path = join(s.kubectl.dir, name);
  writeFileSync(path, text);
  return path;
}

const NETWORK = (name: string, vni: number, extra = '') => `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: ${name}
spec:
  cidr: 10.${vni % 200}.0.0/16
  backend:
    type: vxlan
    vni: ${vni}
${extra}`;

describe('kubectl against weft serve', () => {
  it('finds the four resources through discovery, with short names and the weft category', async () => {
    const out = await ok('api-resources', '--api-group', 'weft.io', '-o', 'wide');
    const rows = out.trim().split('\n').slice(1).map((l) => l.split(/\s+/));
    expect(rows.map((r) => r[0])).toEqual(['leases', 'networks', 'nodes', 'subnets']);
    expect(out).toMatch(/^networks\s+net\s+weft\.io\/v1alpha1\s+false\s+Network\s+get,list,watch,create,update,patch,delete\s+weft,all$/m);
    expect(out).toMatch(/^nodes\s+no\s+weft\.io\/v1alpha1\s+false\s+Node\s+get,list,watch\s+weft$/m);
    expect(await ok('version', '-o', 'json')).toContain('"minor": "32"');
  });

  it('applies examples/: created, then unchanged, then configured after an edit; the etcd bytes are those of weft apply', async () => {
    const dir = join(s.kubectl.dir, 'examples');
    cpSync(join(REPO, 'examples'), dir, { recursive: true, filter: (src) => !src.includes('/deploy') });
    const first = await ok('apply', '-f', dir);
    expect(first.trim().split('\n').sort()).toEqual([
      'network.weft.io/default created',
      'network.weft.io/dual created',
      'network.weft.io/hostgw created',
      'subnet.weft.io/gw-1 created',
    ]);
    expect((await ok('apply', '-f', dir)).trim().split('\n').every((l) => l.endsWith(' unchanged'))).toBe(true);
    const net = join(dir, 'network.yaml');
    writeFileSync(net, readFileSync(net, 'utf8').replace('vni: 1', 'vni: 5'));
    const third = (await ok('apply', '-f', dir)).trim().split('\n');
    expect(third).toContain('network.weft.io/default configured');
    expect(third.filter((l) => l.endsWith(' unchanged'))).toHaveLength(3);

    // The same files through `weft apply` on another prefix: the same Flannel keys and bytes.
    const other = cliEnv(fx, 'weft-apply');
    const applied = await other.run('apply', '-f', dir);
    expect(applied.code, applied.stderr).toBe(0);
    for (const key of ['/config', '/dual/config', '/hostgw/config', '/subnets/10.5.3.0-24']) {
      expect((await s.cli.get(key))?.value, key).toBe((await other.get(key))?.value);
    }
    expect((await s.cli.get('/config'))?.value).toBe('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":5}}');
    // weft get reads what kubectl wrote, labels included.
    const got = JSON.parse((await s.cli.run('get', 'networks', 'default', '-o', 'json')).stdout) as { metadata: { labels: Record<string, string> }; spec: { backend: { vni: number } } };
    expect(got.spec.backend.vni).toBe(5);
    expect(got.metadata.labels).toEqual({ env: 'demo' });
  });

  it('prints every output format, with the columns of weft get', async () => {
    const table = await ok('get', 'subnets');
    const weftTable = (await s.cli.run('get', 'subnets')).stdout;
    expect(table.split('\n')[0]).toBe(weftTable.split('\n')[0]);
    expect(table).toMatch(/^gw-1\s+default\s+10\.5\.3\.0\/24\s+gw-1\s+192\.0\.2\.10\s+\d+s$/m);
    const wide = await ok('get', 'networks', '-o', 'wide');
    expect(wide.split('\n')[0]).toBe((await s.cli.run('get', 'networks', '-o', 'wide')).stdout.split('\n')[0]);
    expect(wide).toMatch(/^hostgw\s+10\.6\.0\.0\/16\s+24\s+host-gw\s/m);
    const leasesWide = (await ok('get', 'leases', '-o', 'wide')).split('\n')[0]!.split(/\s+/);
    expect(leasesWide).toEqual(expect.arrayContaining(['NODE', 'PUBLIC-IP', 'READY', 'PEERS']));
    expect(await ok('get', 'net', 'default', '-o', 'name')).toBe('network.weft.io/default');
    expect(await ok('get', 'networks', '-o', 'jsonpath={.items[*].metadata.name}')).toBe('default dual hostgw');
    expect(await ok('get', 'networks', '-o', 'custom-columns=NAME:.metadata.name,VNI:.spec.backend.vni', '--sort-by=.metadata.name')).toMatch(/^NAME\s+VNI\ndefault\s+5\ndual\s+7\nhostgw\s+<none>$/);
    const yaml = await ok('get', 'network', 'dual', '-o', 'yaml');
    expect(yaml).toMatch(/^kind: Network$/m);
    expect(yaml).toMatch(/^ {2}ipv6Cidr: fd00:7::\/48$/m);
    const json = JSON.parse(await ok('get', 'subnets', '-o', 'json')) as { kind: string; items: { spec: { node: string } }[] };
    expect(json.kind).toBe('List');
    expect(json.items.map((i) => i.spec.node)).toEqual(['gw-1']);
    expect(await ok('get', 'networks', '-l', 'env=demo', '-o', 'name')).toBe('network.weft.io/default');
    expect(await ok('get', 'networks', '--field-selector', 'metadata.name=dual', '-o', 'name')).toBe('network.weft.io/dual');
    expect((await ok('get', 'weft', '-o', 'name')).split('\n')).toEqual(expect.arrayContaining(['network.weft.io/default', 'subnet.weft.io/gw-1', 'lease.weft.io/10.5.3.0-24']));
  });

  it('diffs a change (exit 1) and nothing (exit 0), writing nothing', async () => {
    const live = await s.cli.get('/dual/config');
    const changed = file('dual-changed.yaml', readFileSync(join(REPO, 'examples', 'dual-stack.yaml'), 'utf8').replace('vni: 7', 'vni: 8'));
    const r = await kubectl('diff', '-f', changed);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^-\s+vni: 7$/m);
    expect(r.stdout).toMatch(/^\+\s+vni: 8$/m);
    expect((await s.cli.get('/dual/config'))?.modRevision).toBe(live?.modRevision);
    const same = await kubectl('diff', '-f', join(REPO, 'examples', 'dual-stack.yaml'));
    expect(same.code, same.stdout + same.stderr).toBe(0);
  });

  it('explains fields from the CRD schemas', async () => {
    const out = await ok('explain', 'network.spec.backend');
    expect(out).toMatch(/^GROUP:\s+weft\.io$/m);
    expect(out).toMatch(/^KIND:\s+Network$/m);
    expect(out).toMatch(/^\s+vni\s+<integer>$/m);
    expect(await ok('explain', 'subnets.spec.node')).toMatch(/FIELD:\s+node <string>/);
  });

  it('refuses an unknown field (strict, as kubectl asks) and invalid values with weft apply\'s messages', async () => {
    const unknown = await kubectl('apply', '-f', file('unknown.yaml', NETWORK('unknown', 30, '  bogus: 1\n')));
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('Error from server (BadRequest)');
    expect(unknown.stderr).toContain('strict decoding error: unknown field "spec.bogus"');
    const bad = NETWORK('bad', 31, '  subnetLength: 8\n').replace('vni: 31', 'vni: 99999999');
    const r = await kubectl('apply', '-f', file('bad.yaml', bad));
    expect(r.code).toBe(1);
    const weftSays = (await s.cli.apply(bad)).stderr.trim().split('\n').map((l) => l.replace(/^.*network\/bad: /, ''));
    expect(weftSays.length).toBeGreaterThan(1);
    for (const line of weftSays) expect(r.stderr).toContain(`* ${line}`);
    expect(await s.cli.keys()).not.toContain('/unknown/config');
  });

  it('server-side apply: two field managers conflict on a field, --force-conflicts takes it over', async () => {
    const a = file('ssa-a.yaml', NETWORK('ssa', 40));
    const b = file('ssa-b.yaml', NETWORK('ssa', 40).replace('vni: 40', 'vni: 41'));
    expect(await ok('apply', '--server-side', '--field-manager=alice', '-f', a)).toBe('network.weft.io/ssa serverside-applied');
    const conflict = await kubectl('apply', '--server-side', '--field-manager=bob', '-f', b);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toContain('Apply failed with 1 conflict: conflict with "alice" using weft.io/v1alpha1: .spec.backend.vni');
    expect(JSON.parse((await s.cli.get('/ssa/config'))!.value).Backend.VNI).toBe(40);
    await ok('apply', '--server-side', '--field-manager=bob', '--force-conflicts', '-f', b);
    expect(JSON.parse((await s.cli.get('/ssa/config'))!.value).Backend.VNI).toBe(41);
    const managed = JSON.parse(await ok('get', 'network', 'ssa', '-o', 'json', '--show-managed-fields')) as { metadata: { managedFields: { manager: string; fieldsV1: { 'f:spec': Record<string, unknown> } }[] } };
    const byManager = Object.fromEntries(managed.metadata.managedFields.map((m) => [m.manager, m.fieldsV1['f:spec']]));
    expect(byManager.bob).toEqual({ 'f:backend': { 'f:type': {}, 'f:vni': {} }, 'f:cidr': {} });
    expect(byManager.alice).toEqual({ 'f:backend': { 'f:type': {} }, 'f:cidr': {} });
    // alice stops applying: the fields only she owned go; the shared ones stay with bob.
    await ok('apply', '--server-side', '--field-manager=alice', '-f', file('ssa-a2.yaml', NETWORK('ssa', 40).replace(/ {4}vni: 40\n/, '').replace('cidr: 10.40.0.0/16', 'cidr: 10.40.0.0/16\n  leaseTTL: 12h')));
    const after = JSON.parse(await ok('get', 'network', 'ssa', '-o', 'json')) as { spec: { leaseTTL: string; backend: { vni: number } } };
    expect(after.spec).toMatchObject({ leaseTTL: '12h', backend: { vni: 41 } });
  });

  it('edits an object with a scripted KUBE_EDITOR', async () => {
    const editor = file('editor.sh', '#!/bin/sh\nsed -i "s/vni: 41/vni: 42/" "$1"\n');
    await import('node:fs').then((fs) => fs.chmodSync(editor, 0o755));
    const r = await s.kubectl.run(['edit', 'network', 'ssa'], { env: { KUBE_EDITOR: editor } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('network.weft.io/ssa edited');
    expect(JSON.parse((await s.cli.get('/ssa/config'))!.value).Backend.VNI).toBe(42);
  });

  it('refuses to delete a Network while it has leases; a dry run deletes nothing; the annotation forces it', async () => {
    await ok('apply', '-f', file('busy.yaml', NETWORK('busy', 50)));
    const lease = await s.cli.lease('/busy/subnets/10.50.3.0-24', '{"PublicIP":"192.0.2.3","BackendType":"vxlan","BackendData":{"VNI":50,"VtepMAC":"aa:bb:cc:00:00:03"}}');
    try {
      const refused = await kubectl('delete', 'network', 'busy');
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/Error from server \(Conflict\): network\.weft\.io\/busy: still has 1 lease and 0 reservations \(10\.50\.3\.0-24\); delete them first or use --force \(through the API: \?force=true, or annotate it weft\.io\/force-delete=true\)/);
      expect(await s.cli.get('/busy/config')).toBeDefined();
      expect(await ok('delete', 'lease', '10.50.3.0-24', '--dry-run=server')).toBe('lease.weft.io "10.50.3.0-24" deleted (server dry run)');
      expect(await s.cli.get('/busy/subnets/10.50.3.0-24')).toBeDefined();
      await ok('annotate', 'network', 'busy', 'weft.io/force-delete=true');
      expect(await ok('delete', 'network', 'busy', '--dry-run=server')).toContain('deleted (server dry run)');
      expect(await s.cli.get('/busy/config')).toBeDefined();
      expect(await ok('delete', 'network', 'busy')).toBe('network.weft.io "busy" deleted');
      expect(await s.cli.get('/busy/config')).toBeUndefined();
      expect(await s.cli.get('/busy/subnets/10.50.3.0-24')).toBeUndefined();
      const gone = await kubectl('get', 'network', 'busy');
      expect(gone.stderr).toContain('Error from server (NotFound): networks.weft.io "busy" not found');
    } finally {
      await lease.revoke().catch(() => undefined);
    }
  });

  it('kubectl get leases -w shows a lease as an agent writes it, and its deletion', async () => {
    const watch = s.kubectl.start(['get', 'leases', '-w', '--output-watch-events']);
    try {
      await poll(() => /EVENT\s+NAME/.test(watch.output()) || undefined, { timeoutMs: 10_000, what: 'the watch to list' });
      const lease = await s.cli.lease('/subnets/10.5.77.0-24', '{"PublicIP":"192.0.2.77","BackendType":"vxlan","BackendData":{"VNI":5,"VtepMAC":"aa:bb:cc:00:00:77"}}');
      await poll(() => /^ADDED\s+10\.5\.77\.0-24\s+<none>\s+192\.0\.2\.77\s+vxlan\s+aa:bb:cc:00:00:77/m.test(watch.output()) || undefined, { timeoutMs: 10_000, what: `ADDED 10.5.77.0-24 in:\n${watch.output()}` });
      await lease.revoke();
      await poll(() => /^DELETED\s+10\.5\.77\.0-24\s/m.test(watch.output()) || undefined, { timeoutMs: 10_000, what: `DELETED 10.5.77.0-24 in:\n${watch.output()}` });
    } finally {
      watch.stop();
    }
  });
});
