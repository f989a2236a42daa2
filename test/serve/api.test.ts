// The API conventions below kubectl: status codes and reasons (AlreadyExists, Conflict on a
// stale resourceVersion, Invalid, MethodNotAllowed), JSON patch, Tables with -o wide columns
// at priority 1, watches from a revision, 410 Expired for a compacted one, 503 with
// Retry-After while etcd does not answer.
import { describe, expect, it } from 'vitest';
import { useEtcd } from '../helpers/etcd.js';
import { apiRequest } from './http-client.js';
import { useServe } from './serve-fixture.js';

const fx = useEtcd('api');
const s = useServe(fx, 'api');
const BASE = '/apis/weft.io/v1alpha1';
const api = (method: string, path: string, opts: Parameters<typeof apiRequest>[4] = {}) =>
  apiRequest(s.serve.url, s.serve.caPem, method, path, { token: s.serve.adminToken!, ...opts });

const network = (name: string, vni: number) => ({
  apiVersion: 'weft.io/v1alpha1',
  kind: 'Network',
  metadata: { name },
  spec: { cidr: `10.${vni}.0.0/16`, backend: { type: 'vxlan', vni } },
});

/** A watch's first lines (each one event), read until `lines` arrived or the stream ended. */
async function watchLines(path: string, lines: number, during?: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(`${s.serve.url}${path}`, { ca: s.serve.caPem, headers: { Authorization: `Bearer ${s.serve.adminToken}` } }, (res) => {
      let text = '';
      const done = () => {
        req.destroy();
        resolve(text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>));
      };
      res.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.split('\n').filter(Boolean).length >= lines) done();
      });
      res.on('end', done);
      void during?.().catch(reject);
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`watch ${path}: fewer than ${lines} events in 15 s`)));
    req.on('error', reject);
    req.end();
  });
}

describe('weft serve API conventions', () => {
  it('answers aggregated discovery when asked (as kubectl asks first) and the plain lists otherwise', async () => {
    const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';
    const agg = await api('GET', '/apis', { accept });
    expect(agg.headers['content-type']).toBe('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
    const items = agg.json().items as { metadata: { name: string }; versions: { version: string; resources: { resource: string; scope: string }[] }[] }[];
    expect(items.map((i) => i.metadata.name)).toEqual(['weft.io']);
    expect(items[0]!.versions[0]!.resources.map((r) => `${r.resource}:${r.scope}`)).toEqual(['networks:Cluster', 'subnets:Cluster', 'leases:Cluster', 'nodes:Cluster']);
    expect((await api('GET', '/api', { accept })).json()).toMatchObject({ kind: 'APIGroupDiscoveryList', items: [] });
    expect((await api('GET', '/apis')).json()).toMatchObject({ kind: 'APIGroupList', groups: [{ name: 'weft.io' }] });
  });

  it('creates (201), refuses a second create (409 AlreadyExists), and reports the etcd revision as resourceVersion', async () => {
    const created = await api('POST', `${BASE}/networks`, { body: network('n1', 71) });
    expect(created.status, created.text).toBe(201);
    const again = await api('POST', `${BASE}/networks`, { body: network('n1', 71) });
    expect(again.status).toBe(409);
    expect(again.json()).toMatchObject({ kind: 'Status', reason: 'AlreadyExists', message: 'networks.weft.io "n1" already exists' });
    const kv = await s.cli.get('/n1/config');
    expect((created.json().metadata as { resourceVersion: string }).resourceVersion).toBe(String(kv!.modRevision));
    const list = (await api('GET', `${BASE}/networks`)).json();
    expect(list).toMatchObject({ kind: 'NetworkList', apiVersion: 'weft.io/v1alpha1' });
    expect(Number((list.metadata as { resourceVersion: string }).resourceVersion)).toBeGreaterThanOrEqual(kv!.modRevision);
  });

  it('updates with resourceVersion compared: stale is 409 Conflict, missing is 422', async () => {
    const live = (await api('GET', `${BASE}/networks/n1`)).json() as ReturnType<typeof network> & { metadata: { resourceVersion: string } };
    const missing = await api('PUT', `${BASE}/networks/n1`, { body: { ...live, metadata: { name: 'n1' } } });
    expect(missing.status).toBe(422);
    const next = { ...live, spec: { ...live.spec, backend: { type: 'vxlan', vni: 72 } } };
    const put = await api('PUT', `${BASE}/networks/n1`, { body: next });
    expect(put.status, put.text).toBe(200);
    const stale = await api('PUT', `${BASE}/networks/n1`, { body: next });
    expect(stale.status).toBe(409);
    expect(stale.json()).toMatchObject({ reason: 'Conflict', code: 409 });
    expect(stale.json().message).toContain('the object has been modified');
  });

  it('applies JSON patches (a failed test op is 422), refuses strategic merge for custom resources, and writes no lease', async () => {
    const patch = await api('PATCH', `${BASE}/networks/n1`, { contentType: 'application/json-patch+json', body: [{ op: 'test', path: '/spec/backend/vni', value: 72 }, { op: 'replace', path: '/spec/backend/vni', value: 73 }] });
    expect(patch.status, patch.text).toBe(200);
    expect(JSON.parse((await s.cli.get('/n1/config'))!.value).Backend.VNI).toBe(73);
    const failed = await api('PATCH', `${BASE}/networks/n1`, { contentType: 'application/json-patch+json', body: [{ op: 'test', path: '/spec/backend/vni', value: 1 }] });
    expect(failed.status).toBe(422);
    const smp = await api('PATCH', `${BASE}/networks/n1`, { contentType: 'application/strategic-merge-patch+json', body: {} });
    expect(smp.status).toBe(415);
    const lease = await api('POST', `${BASE}/leases`, { body: { apiVersion: 'weft.io/v1alpha1', kind: 'Lease', metadata: { name: '10.5.1.0-24' }, spec: {} } });
    expect(lease.status).toBe(405);
    const invalid = await api('PATCH', `${BASE}/networks/n1`, { contentType: 'application/merge-patch+json', body: { spec: { subnetLength: 31 } } });
    expect(invalid.status).toBe(422);
    expect(invalid.json()).toMatchObject({ reason: 'Invalid', details: { causes: [{ reason: 'FieldValueInvalid', field: 'spec.subnetLength' }] } });
  });

  it('answers Table requests with weft get\'s columns, the -o wide ones at priority 1', async () => {
    await s.cli.lease('/subnets/10.5.9.0-24', '{"PublicIP":"192.0.2.9","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:09"}}');
    const t = (await api('GET', `${BASE}/leases`, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' })).json() as {
      kind: string;
      columnDefinitions: { name: string; priority: number }[];
      rows: { cells: string[]; object: { kind: string; metadata: { name: string } } }[];
    };
    expect(t.kind).toBe('Table');
    const cols = Object.fromEntries(t.columnDefinitions.map((c) => [c.name, c.priority]));
    expect(cols).toMatchObject({ NAME: 0, NODE: 0, 'PUBLIC-IP': 0, EXPIRES: 0, VNI: 1, READY: 1, PEERS: 1 });
    expect(t.rows[0]!.cells.slice(0, 3)).toEqual(['10.5.9.0-24', '<none>', '192.0.2.9']);
    expect(t.rows[0]!.object).toMatchObject({ kind: 'PartialObjectMetadata', metadata: { name: '10.5.9.0-24' } });
  });

  it('watches from a resourceVersion: the changes since, then new ones', async () => {
    const list = (await api('GET', `${BASE}/networks`)).json() as { metadata: { resourceVersion: string } };
    await api('POST', `${BASE}/networks`, { body: network('n2', 74) });
    const events = await watchLines(`${BASE}/networks?watch=1&resourceVersion=${list.metadata.resourceVersion}&labelSelector=`, 3, async () => {
      await api('PATCH', `${BASE}/networks/n2`, { contentType: 'application/merge-patch+json', body: { metadata: { labels: { a: 'b' } } } });
      await api('DELETE', `${BASE}/networks/n2`);
    });
    expect(events.map((e) => [e.type, (e.object as { metadata: { name: string } }).metadata.name])).toEqual([
      ['ADDED', 'n2'],
      ['MODIFIED', 'n2'],
      ['DELETED', 'n2'],
    ]);
  });

  it('ends a watch from a compacted revision with 410 Expired, so clients list again', async () => {
    const before = (await api('GET', `${BASE}/networks`)).json() as { metadata: { resourceVersion: string } };
    await api('POST', `${BASE}/networks`, { body: network('n3', 75) });
    const now = (await fx.admin.list('/')).revision;
    await fx.admin.client.kv.compact({ revision: String(now), physical: true });
    const events = await watchLines(`${BASE}/networks?watch=true&resourceVersion=${before.metadata.resourceVersion}`, 1);
    expect(events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });

  it('reads DELETE bodies: dryRun in DeleteOptions deletes nothing', async () => {
    const r = await api('DELETE', `${BASE}/networks/n3`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', dryRun: ['All'], propagationPolicy: 'Background' } });
    expect(r.status, r.text).toBe(200);
    expect(await s.cli.get('/n3/config')).toBeDefined();
    expect((await api('DELETE', `${BASE}/nodes/h1`)).status).toBe(405);
  });

  it('answers 503 with Retry-After while etcd does not answer', async () => {
    fx.etcd.pause();
    try {
      const r = await api('GET', `${BASE}/networks`);
      expect(r.status).toBe(503);
      expect(r.headers['retry-after']).toBe('1');
      expect(r.json()).toMatchObject({ kind: 'Status', reason: 'ServiceUnavailable', code: 503 });
    } finally {
      fx.etcd.resume();
    }
  });
});
