// The pure parts of weft serve: field ownership for server-side apply, label and field
// selectors, kube-apiserver's token file format.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Printable } from '../../src/api/types.js';
import { ADMIN_GROUP, authorize, TokenFileError, TokenTable } from '../../src/serve/auth.js';
import { resourceByPlural } from '../../src/serve/kinds.js';
import { runServeCommand } from '../../src/serve/main.js';
import { applyConfig, fromFieldsV1, leafPaths, recordUpdate, toFieldsV1 } from '../../src/serve/managed-fields.js';
import { fieldFilter, labelFilter } from '../../src/serve/selectors.js';
import { ApiError } from '../../src/serve/status.js';

const now = new Date('2026-01-02T03:04:05Z');
const net = (spec: Record<string, unknown>, labels?: Record<string, string>) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Network',
  metadata: { name: 'n', ...(labels ? { labels } : {}) },
  spec,
});

describe('managed fields', () => {
  it('round-trips leaf paths through FieldsV1, label keys with dots and slashes included', () => {
    const obj = net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 1 } }, { 'app.kubernetes.io/name': 'x' });
    const paths = leafPaths(obj);
    expect(toFieldsV1(paths.values())).toEqual({
      'f:spec': { 'f:cidr': {}, 'f:backend': { 'f:type': {}, 'f:vni': {} } },
      'f:metadata': { 'f:labels': { 'f:app.kubernetes.io/name': {} } },
    });
    expect([...fromFieldsV1(toFieldsV1(paths.values())).keys()].sort()).toEqual([...paths.keys()].sort());
  });

  it('gives an update the fields it changed, and takes them from everyone else', () => {
    const a = applyConfig(undefined, [], 'alice', net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 1 } }), false, now);
    const after = structuredClone(a.object) as ReturnType<typeof net>;
    (after.spec.backend as { vni: number }).vni = 2;
    const entries = recordUpdate(a.entries, 'kubectl-edit', a.object, after, now);
    const owned = Object.fromEntries(entries.map((e) => [e.manager, [...fromFieldsV1(e.fieldsV1).keys()].sort()]));
    expect(owned['kubectl-edit']).toEqual(['["spec","backend","vni"]']);
    expect(owned.alice).toEqual(['["spec","backend","type"]', '["spec","cidr"]']);
  });

  it('conflicts only where another manager owns a field with a different value; force takes it', () => {
    const a = applyConfig(undefined, [], 'alice', net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 1 } }), false, now);
    // Same values: shared, no conflict.
    const shared = applyConfig(a.object, a.entries, 'bob', net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }), false, now);
    expect(shared.entries.map((e) => e.manager)).toEqual(['alice', 'bob']);
    const changed = net({ cidr: '10.6.0.0/16', backend: { type: 'vxlan' } });
    let err: unknown;
    try {
      applyConfig(shared.object, shared.entries, 'bob', changed, false, now);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe(409);
    expect((err as ApiError).details?.causes).toEqual([{ reason: 'FieldManagerConflict', message: 'conflict with "alice" using weft.io/v1alpha1', field: '.spec.cidr' }]);
    const forced = applyConfig(shared.object, shared.entries, 'bob', changed, true, now);
    expect((forced.object.spec as { cidr: string }).cidr).toBe('10.6.0.0/16');
    expect([...fromFieldsV1(forced.entries.find((e) => e.manager === 'alice')!.fieldsV1).keys()]).not.toContain('["spec","cidr"]');
  });

  it('removes what a manager stops applying, unless someone else still owns it', () => {
    const a = applyConfig(undefined, [], 'alice', net({ cidr: '10.5.0.0/16', leaseTTL: '1h', backend: { type: 'vxlan', vni: 1 } }, { a: '1', b: '2' }), false, now);
    const b = applyConfig(a.object, a.entries, 'bob', net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 1 } }, { b: '2' }), false, now);
    const again = applyConfig(b.object, b.entries, 'alice', net({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }), false, now);
    expect(again.object.spec).toEqual({ cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 1 } });
    expect((again.object.metadata as { labels?: unknown }).labels).toEqual({ b: '2' });
  });
});

describe('selectors', () => {
  const lease = (name: string, network: string, labels?: Record<string, string>) =>
    ({ apiVersion: 'weft.io/v1alpha1', kind: 'Lease', metadata: { name, ...(labels ? { labels } : {}) }, spec: { network, backend: { type: 'vxlan' } } }) as Printable;
  const objs = [lease('a', 'default', { env: 'prod', tier: 'x' }), lease('b', 'blue', { env: 'dev' }), lease('c', 'blue')];
  const names = (f: (o: Printable) => boolean) => objs.filter(f).map((o) => o.metadata.name);

  it('matches equality and set-based label requirements', () => {
    expect(names(labelFilter('env=prod'))).toEqual(['a']);
    expect(names(labelFilter('env!=prod'))).toEqual(['b', 'c']);
    expect(names(labelFilter('env in (prod, dev),!tier'))).toEqual(['b']);
    expect(names(labelFilter('env notin (prod)'))).toEqual(['b', 'c']);
    expect(names(labelFilter('env'))).toEqual(['a', 'b']);
    expect(() => labelFilter('env in prod')).toThrow(/unable to parse requirement/);
  });

  it('matches metadata.name and the per-kind fields, and refuses others', () => {
    const r = resourceByPlural('leases')!;
    expect(names(fieldFilter('spec.network=blue,metadata.name!=b', r))).toEqual(['c']);
    expect(() => fieldFilter('spec.node=h1', r)).toThrow(/field label not supported: spec.node/);
  });
});

describe('token file', () => {
  it('reads kube-apiserver\'s CSV (quoted groups, comments) and looks tokens up', () => {
    const t = TokenTable.parse('# comment\nt1,ada,1,"weft:admins,ops"\nt2,rob,2\n"t,3",eve,3,viewers\n', 'tokens.csv');
    expect(t.lookup('t1')).toEqual({ name: 'ada', uid: '1', groups: [ADMIN_GROUP, 'ops'] });
    expect(t.lookup('t2')).toEqual({ name: 'rob', uid: '2', groups: [] });
    expect(t.lookup('t,3')?.name).toBe('eve');
    expect(t.lookup('t4')).toBeUndefined();
    expect(t.adminToken()?.token).toBe('t1');
    expect(() => TokenTable.parse('only-a-token\n', 'tokens.csv')).toThrow(TokenFileError);
    expect(() => TokenTable.parse('ok,u,1\n"unterminated,u,2\n', 'tokens.csv')).toThrow(/tokens\.csv:2:/);
  });

  it('lets every user read and only weft:admins write', () => {
    expect(() => authorize({ name: 'rob', groups: [] }, 'list', 'networks', undefined)).not.toThrow();
    expect(() => authorize({ name: 'ada', groups: [ADMIN_GROUP] }, 'delete', 'networks', 'x')).not.toThrow();
    expect(() => authorize({ name: 'rob', groups: ['ops'] }, 'patch', 'networks', 'x')).toThrow(/User "rob" cannot patch resource "networks"/);
  });
});

describe('weft serve flags', () => {
  const run = async (argv: string[]) => {
    let err = '';
    const code = await runServeCommand(argv, { stdout: () => {}, stderr: (t) => (err += t), env: {} });
    return { code, err };
  };

  it('refuses a bad port, level, flag or token file before serving', async () => {
    expect(await run(['--secure-port', '70000'])).toEqual({ code: 1, err: 'error: --secure-port must be a port number, got "70000"\n' });
    expect((await run(['--log-level', 'loud'])).err).toContain('--log-level must be one of debug, info, warn, error');
    expect((await run(['--bind'])).err).toContain("Run 'weft serve --help' for usage.");
    const dir = mkdtempSync(join(tmpdir(), 'weft-serve-flags-'));
    try {
      writeFileSync(join(dir, 'tokens.csv'), 'just-a-token\n');
      const r = await run(['--token-auth-file', join(dir, 'tokens.csv'), '--secure-port', '0', '--etcd-endpoints', 'http://127.0.0.1:1']);
      expect(r).toEqual({ code: 1, err: `error: ${join(dir, 'tokens.csv')}:1: expected token,user,uid[,"group1,group2"]\n` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
