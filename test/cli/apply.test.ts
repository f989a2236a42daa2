// weft apply against a real etcd: what lands in Flannel's layout, byte for byte, and every
// way an apply is refused without writing anything.
import { readdirSync, readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConflictError } from '../../src/api/errors.js';
import { planNetworkApply } from '../../src/control/apply-network.js';
import { ResourceStore } from '../../src/control/resources.js';
import { Store } from '../../src/store/store.js';
import { etcdFlags, REPO, testPrefix, weft } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

const VXLAN_LEASE = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';

function network(name: string, spec: Record<string, unknown>, metadata: Record<string, unknown> = {}) {
  return stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Network', metadata: { name, ...metadata }, spec });
}

function subnet(name: string, spec: Record<string, unknown>) {
  return stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Subnet', metadata: { name }, spec });
}

const docs = (...parts: string[]) => parts.join('---\n');

/** 1-based line of the first line containing needle (after the given line). */
function lineOf(text: string, needle: string, after = 0): number {
  const i = text.split('\n').findIndex((l, n) => n >= after && l.includes(needle));
  if (i < 0) throw new Error(`${needle} not in text`);
  return i + 1;
}

describe('weft apply', () => {
  const fx = useEtcd();
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'weft-apply-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh prefix and a CLI bound to it. */
  function env() {
    const prefix = testPrefix();
    const flags = etcdFlags(fx.etcd.endpoint, prefix);
    let n = 0;
    return {
      prefix,
      run: (args: string[], stdin?: string) => weft([...args, ...flags], stdin === undefined ? {} : { stdin }),
      apply: (yaml: string, ...extra: string[]) => weft(['apply', '-f', '-', ...extra, ...flags], { stdin: yaml }),
      file: (yaml: string) => {
        const f = join(dir, `${n++}-${Math.random().toString(36).slice(2)}.yaml`);
        writeFileSync(f, yaml);
        return f;
      },
      dump: async () => (await fx.admin.list(prefix + '/')).kvs.map((kv) => [kv.key, kv.value, kv.modRevision]),
      get: (key: string) => fx.admin.get(prefix + key),
    };
  }

  it('applies every file in examples/, alone and together, and writes flannel configs', async () => {
    const e = env();
    const files = readdirSync(`${REPO}examples`).filter((f) => f.endsWith('.yaml')).sort((a, b) => (a === 'reservation.yaml' ? 1 : b === 'reservation.yaml' ? -1 : a.localeCompare(b)));
    expect(files).toEqual(expect.arrayContaining(['network.yaml', 'host-gw.yaml', 'reservation.yaml']));
    for (const f of files) {
      const r = await e.run(['apply', '-f', `${REPO}examples/${f}`]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^(network|subnet)\.weft\.io\/\S+ created\n$/);
    }
    const again = await e.run(['apply', '-f', `${REPO}examples`]);
    expect(again.code).toBe(0);
    expect(again.stdout.split('\n').filter(Boolean).every((l) => l.endsWith(' unchanged'))).toBe(true);
    expect((await e.get('/config'))!.value).toBe('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}');
    expect((await e.get('/hostgw/config'))!.value).toBe(
      '{"Network":"10.6.0.0/16","SubnetLen":24,"SubnetMin":"10.6.10.0","SubnetMax":"10.6.200.0","Backend":{"Type":"host-gw"}}',
    );
    const reserved = (await e.get('/subnets/10.5.3.0-24'))!;
    expect(reserved.value).toBe('{"PublicIP":"192.0.2.10","PublicIPv6":null,"NodeName":"gw-1"}');
    expect(reserved.leaseId).toBe('0');
    // Nothing but lease keys under any subnets prefix.
    for (const [key] of await e.dump()) {
      if (String(key).includes('/subnets')) expect(String(key)).toMatch(/\/(_weft\/subnets\/gw-1|subnets\/10\.5\.3\.0-24)$/);
    }
  });

  it('says created, configured and unchanged; generation follows the spec, resourceVersion the config key', async () => {
    const e = env();
    const v1 = network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    expect((await e.apply(v1)).stdout).toBe('network.weft.io/default created\n');
    expect((await e.apply(v1)).stdout).toBe('network.weft.io/default unchanged\n');
    // Writing the defaults out changes nothing.
    expect((await e.apply(network('default', { cidr: '10.5.0.0/16', subnetLength: 24, backend: { type: 'vxlan', vni: 1 } }))).stdout).toBe(
      'network.weft.io/default unchanged\n',
    );
    const labelled = network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }, { labels: { team: 'net' } });
    expect((await e.apply(labelled)).stdout).toBe('network.weft.io/default configured\n');
    let got = JSON.parse((await e.run(['get', 'network', 'default', '-o', 'json'])).stdout);
    expect(got.metadata).toMatchObject({ name: 'default', generation: 1, labels: { team: 'net' } });
    expect(got.metadata.resourceVersion).toBe(String((await e.get('/config'))!.modRevision));
    expect(got.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);

    const v2 = network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 2 }, leaseTTL: '1h' }, { labels: { team: 'net' } });
    expect((await e.apply(v2)).stdout).toBe('network.weft.io/default configured\n');
    got = JSON.parse((await e.run(['get', 'network', 'default', '-o', 'json'])).stdout);
    expect(got.metadata.generation).toBe(2);
    expect(got.spec).toEqual({ cidr: '10.5.0.0/16', subnetLength: 24, backend: { type: 'vxlan', vni: 2 }, leaseTTL: '1h' });
    expect((await e.get('/config'))!.value).toBe('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":2}}');
    expect(JSON.parse((await e.get('/_weft/networks/default'))!.value)).toMatchObject({ generation: 2, leaseTTL: '1h', labels: { team: 'net' } });
  });

  it('writes nothing when any document of a multi-document apply is invalid', async () => {
    const e = env();
    await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }));
    const before = await e.dump();
    const text = docs(
        network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 9 } }),
        network('other', { cidr: '10.9.0.0/16', backend: { type: 'host-gw' } }),
        subnet('far', { network: 'default', cidr: '10.77.1.0/24', node: 'h1' }),
        subnet('nonet', { network: 'missing', cidr: '10.5.1.0/24', node: 'h1' }),
        network('typo', { cidr: '10.8.0.0/16', backend: { type: 'vxlan', vnii: 3 } }),
    );
    const f = e.file(text);
    const r = await e.run(['apply', '-f', f]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toEqual([
      `${f}:${lineOf(text, 'vnii')}: network/typo: spec.backend.vnii: unknown field; known fields: type, vni, port, mtu, directRouting, gbp`,
    ]);
    expect(await e.dump()).toEqual(before);
    // With the typo fixed, the store-level problems of the other documents show, all of them.
    const g = e.file(readFileSync(f, 'utf8').replace('vnii', 'vni'));
    const r2 = await e.run(['apply', '-f', g]);
    expect(r2.code).toBe(1);
    expect(r2.stderr.trim().split('\n')).toEqual([
      `${g}:${lineOf(text, '10.77.1.0/24')}: subnet/far: spec.cidr: 10.77.1.0/24 is outside network "default" (10.5.0.0/16)`,
      `${g}:${lineOf(text, 'network: missing')}: subnet/nonet: spec.network: network "missing" does not exist; apply it first (Networks in the same apply come first)`,
    ]);
    expect(await e.dump()).toEqual(before);
  });

  it('applies a Subnet together with its Network, Networks first whatever the order', async () => {
    const e = env();
    const r = await e.apply(
      docs(subnet('r1', { network: 'blue', cidr: '10.9.4.0/24', publicIP: '192.0.2.4' }), network('blue', { cidr: '10.9.0.0/16', backend: { type: 'vxlan' } })),
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('network.weft.io/blue created\nsubnet.weft.io/r1 created\n');
    const kv = (await e.get('/blue/subnets/10.9.4.0-24'))!;
    expect([kv.value, kv.leaseId]).toEqual(['{"PublicIP":"192.0.2.4","PublicIPv6":null}', '0']);
  });

  it('round-trips a reservation without an etcd lease, keeping an adopting agent\'s value', async () => {
    const e = env();
    await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }));
    const r1 = subnet('gw-1', { network: 'default', cidr: '10.5.3.0/24', node: 'gw-1' });
    expect((await e.apply(r1)).stdout).toBe('subnet.weft.io/gw-1 created\n');
    const yaml = (await e.run(['get', 'subnet', 'gw-1', '-o', 'yaml'])).stdout;
    expect(yaml).toContain('cidr: 10.5.3.0/24');
    expect((await e.apply(yaml)).stdout).toBe('subnet.weft.io/gw-1 unchanged\n');
    // The agent adopts it: same key, its backend data, still no etcd lease.
    const adopted = '{"PublicIP":"192.0.2.7","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"NodeName":"gw-1"}';
    await fx.admin.client.put(`${e.prefix}/subnets/10.5.3.0-24`).value(adopted);
    const status = JSON.parse((await e.run(['get', 'subnet', 'gw-1', '-o', 'json'])).stdout).status;
    expect(status).toEqual({ adoptedBy: 'gw-1', publicIP: '192.0.2.7', vtepMAC: 'c6:d2:32:6f:8f:44' });
    expect((await e.apply(r1)).stdout).toBe('subnet.weft.io/gw-1 unchanged\n');
    // A label change re-puts the adopted value untouched (and moves resourceVersion).
    const labelled = stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Subnet', metadata: { name: 'gw-1', labels: { a: 'b' } }, spec: { network: 'default', cidr: '10.5.3.0/24', node: 'gw-1' } });
    expect((await e.apply(labelled)).stdout).toBe('subnet.weft.io/gw-1 configured\n');
    const kv = (await e.get('/subnets/10.5.3.0-24'))!;
    expect([kv.value, kv.leaseId]).toEqual([adopted, '0']);
    // Giving it to another node writes a fresh reservation value.
    expect((await e.apply(subnet('gw-1', { network: 'default', cidr: '10.5.3.0/24', node: 'gw-2' }))).stdout).toBe('subnet.weft.io/gw-1 configured\n');
    expect((await e.get('/subnets/10.5.3.0-24'))!.value).toBe('{"PublicIP":"255.255.255.255","PublicIPv6":null,"NodeName":"gw-2"}');
    // Moving it deletes the old key in the same transaction.
    expect((await e.apply(subnet('gw-1', { network: 'default', cidr: '10.5.4.0/24', node: 'gw-2' }))).stdout).toBe('subnet.weft.io/gw-1 configured\n');
    expect(await e.get('/subnets/10.5.3.0-24')).toBeUndefined();
    expect((await e.get('/subnets/10.5.4.0-24'))!.leaseId).toBe('0');
    expect(JSON.parse((await e.get('/_weft/subnets/gw-1'))!.value)).toMatchObject({ cidr: '10.5.4.0/24', node: 'gw-2', generation: 3 });
  });

  it('checks a Subnet against its Network and against live leases', async () => {
    const e = env();
    await e.apply(network('default', { cidr: '10.5.0.0/16', subnetMin: '10.5.10.0', subnetMax: '10.5.20.0', backend: { type: 'vxlan' } }));
    const lease = fx.admin.client.lease(600, { autoKeepAlive: false });
    await lease.put(`${e.prefix}/subnets/10.5.12.0-24`).value(VXLAN_LEASE.replace('}}', '},"NodeName":"h1"}'));
    const cases: [Record<string, unknown>, string][] = [
      [{ cidr: '10.5.11.0/25', node: 'h2' }, '10.5.11.0/25 must be a /24, the subnetLength of network "default"'],
      [{ cidr: '10.5.9.0/24', node: 'h2' }, '10.5.9.0/24 is outside subnetMin..subnetMax (10.5.10.0..10.5.20.0) of network "default"'],
      [{ cidr: '10.6.1.0/24', node: 'h2' }, '10.6.1.0/24 is outside network "default" (10.5.0.0/16)'],
      [{ cidr: '10.5.12.0/24', node: 'h2' }, '10.5.12.0/24 overlaps the live lease 10.5.12.0-24 held by node h1 (192.168.64.3)'],
    ];
    for (const [spec, message] of cases) {
      const r = await e.apply(subnet('s', { network: 'default', ...spec }));
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`<stdin>:${lineOf(subnet('s', { network: 'default', ...spec }), 'cidr:')}: subnet/s: spec.cidr: ${message}\n`);
    }
    // The lease's own node may turn its lease into a reservation: same value, lease detached.
    const own = await e.apply(subnet('h1', { network: 'default', cidr: '10.5.12.0/24', node: 'h1' }));
    expect(own.stdout).toBe('subnet.weft.io/h1 created\n');
    const kv = (await e.get('/subnets/10.5.12.0-24'))!;
    expect(kv.leaseId).toBe('0');
    expect(kv.value).toContain('"VtepMAC":"c6:d2:32:6f:8f:44"');
    const other = await e.apply(subnet('s', { network: 'default', cidr: '10.5.12.0/24', publicIP: '192.168.64.3' }));
    expect(other.stderr).toBe('<stdin>:7: subnet/s: spec.cidr: 10.5.12.0/24 overlaps subnet/h1 (10.5.12.0/24)\n');
    await lease.revoke();
  });

  it('refuses to apply a Lease', async () => {
    const e = env();
    const r = await e.apply(
      stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Lease', metadata: { name: '10.5.3.0-24' }, spec: { network: 'default', subnet: '10.5.3.0/24', publicIP: '192.0.2.1', backend: { type: 'vxlan' } } }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('<stdin>:2: lease/10.5.3.0-24: kind: Leases are written by agents and cannot be applied; reserve a subnet with kind Subnet instead\n');
  });

  it('treats a stale resourceVersion as a conflict, not an overwrite', async () => {
    const e = env();
    await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }));
    const live = (await e.run(['get', 'network', 'default', '-o', 'yaml'])).stdout;
    expect((await e.apply(live)).stdout).toBe('network.weft.io/default unchanged\n');
    await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni: 5 } }));
    const before = await e.dump();
    const r = await e.apply(live.replace('vni: 1', 'vni: 6'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: networks\.weft\.io "default": the object has been modified \(resourceVersion \d+ given, live is \d+\)/);
    expect(await e.dump()).toEqual(before);
    const gone = await e.apply(network('ghost', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }, { resourceVersion: '12' }));
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('resourceVersion 12 was given but the object does not exist');
  });

  it('lets exactly one of two racing applies win', async () => {
    const e = env();
    const s = new Store(fx.admin.client, e.prefix, [fx.etcd.endpoint]);
    const rs = new ResourceStore(s);
    const spec = (vni: number) => ({ apiVersion: 'weft.io/v1alpha1' as const, kind: 'Network' as const, metadata: { name: 'default' }, spec: { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni } } });
    for (const round of ['create', 'update']) {
      const snap = await rs.snapshot();
      const plans = [1, 2].map((vni) => planNetworkApply(snap, spec(vni + (round === 'update' ? 10 : 0)), rs.ctx(false)));
      const results = await Promise.allSettled(plans.map((p) => rs.commit(p)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(lost.reason).toBeInstanceOf(ConflictError);
      expect(lost.reason.message).toContain('network.weft.io/default: changed by someone else');
    }
    // Through the CLI: concurrent applies of different specs never both report success
    // for a lost write; each ends configured or with a conflict (exit 1).
    const runs = await Promise.all([3, 4, 5, 6].map((vni) => e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan', vni } }))));
    for (const r of runs) expect(r.code === 0 ? r.stdout : r.stderr).toMatch(/configured|changed by someone else|has been modified/);
    const winner = JSON.parse((await e.get('/config'))!.value).Backend.VNI;
    expect(runs.some((r, i) => r.code === 0 && [3, 4, 5, 6][i] === winner)).toBe(true);
  });

  it('refuses to strand leases when cidr or subnetLength change, unless --force', async () => {
    const e = env();
    await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }));
    const lease = fx.admin.client.lease(600, { autoKeepAlive: false });
    await lease.put(`${e.prefix}/subnets/10.5.3.0-24`).value(VXLAN_LEASE);
    await fx.admin.client.put(`${e.prefix}/subnets/10.5.200.0-24`).value('{"PublicIP":"192.0.2.9","PublicIPv6":null}');
    const before = await e.dump();
    const moved = network('default', { cidr: '10.6.0.0/16', backend: { type: 'vxlan' } });
    const r = await e.apply(moved);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'error: network.weft.io/default: the new spec leaves 2 subnets outside 10.6.0.0/16 /24 10.6.1.0..10.6.255.0: ' +
        '10.5.200.0-24 (reserved for 192.0.2.9), 10.5.3.0-24 (leased by 192.168.64.3); use --force to apply anyway (those hosts will lose their subnets)\n',
    );
    const longer = await e.apply(network('default', { cidr: '10.5.0.0/16', subnetLength: 25, backend: { type: 'vxlan' } }));
    expect(longer.code).toBe(1);
    expect(longer.stderr).toContain('leaves 2 subnets outside 10.5.0.0/16 /25');
    const narrower = await e.apply(network('default', { cidr: '10.5.0.0/16', subnetMax: '10.5.100.0', backend: { type: 'vxlan' } }));
    expect(narrower.stderr).toContain('leaves 1 subnet outside 10.5.0.0/16 /24 10.5.1.0..10.5.100.0: 10.5.200.0-24');
    expect(await e.dump()).toEqual(before);
    // A change every lease survives needs no force.
    expect((await e.apply(network('default', { cidr: '10.5.0.0/16', subnetMax: '10.5.250.0', backend: { type: 'vxlan' } }))).code).toBe(0);
    const forced = await e.apply(moved, '--force');
    expect(forced.stdout).toBe('network.weft.io/default configured\n');
    expect((await e.get('/config'))!.value).toBe('{"Network":"10.6.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}');
    await lease.revoke();
  });

  it('--dry-run validates against the store and writes nothing', async () => {
    const e = env();
    const r = await e.apply(docs(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }), subnet('a', { network: 'default', cidr: '10.5.7.0/24', node: 'a' })), '--dry-run');
    expect(r.stdout).toBe('network.weft.io/default created (dry run)\nsubnet.weft.io/a created (dry run)\n');
    expect(await e.dump()).toEqual([]);
  });

  it('adopts a config written by flanneld\'s operator with etcdctl', async () => {
    const e = env();
    await fx.admin.client.put(`${e.prefix}/config`).value('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}');
    const got = JSON.parse((await e.run(['get', 'networks', 'default', '-o', 'json'])).stdout);
    expect(got.metadata.uid).toBeUndefined();
    expect(got.spec).toEqual({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    expect(got.status).toEqual({ capacity: 255, leases: 0, reservations: 0, free: 255 });
    const r = await e.apply(network('default', { cidr: '10.5.0.0/16', backend: { type: 'vxlan' } }));
    expect(r.stdout).toBe('network.weft.io/default configured\n');
    expect((await e.get('/config'))!.value).toBe('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}');
    expect(JSON.parse((await e.get('/_weft/networks/default'))!.value).uid).toMatch(/^[0-9a-f-]{36}$/);
  });
});

