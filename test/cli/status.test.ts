// weft get nodes, weft get leases -o wide and weft describe lease against a real etcd, with
// node status records written by the agent's own publisher, and hostile ones by hand.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { StatusPublisher } from '../../src/agent/status.js';
import { silentLogger } from '../../src/log.js';
import { NodeStatusWriter } from '../../src/store/node-status.js';
import { Store } from '../../src/store/store.js';
import { etcdFlags, testPrefix, weft } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

const NETWORK = `apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: default}
spec: {cidr: 10.5.0.0/16, backend: {type: vxlan}}
`;
const LEASE = (ip: string, mac: string, node: string) =>
  `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"},"NodeName":"${node}"}`;

describe('node status in the CLI', () => {
  const fx = useEtcd('cli-status');

  async function env() {
    const prefix = testPrefix('status');
    const flags = etcdFlags(fx.etcd.endpoint, prefix);
    const run = (...args: string[]) => weft([...args, ...flags]);
    expect((await weft(['apply', '-f', '-', ...flags], { stdin: NETWORK })).code).toBe(0);
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    const stops: (() => Promise<void>)[] = [];
    /** A host: its lease, and its agent's publisher reporting `ready`. */
    const host = async (name: string, subnet: number, ready: boolean) => {
      const lease = fx.admin.client.lease(3600, { autoKeepAlive: false });
      const key = `${subnet}`;
      await lease.put(`${prefix}/subnets/10.5.${key}.0-24`).value(LEASE(`192.0.2.${subnet}`, `02:00:00:00:00:0${subnet}`, name));
      const pub = new StatusPublisher({
        sink: new NodeStatusWriter(store, store.layout.nodeStatusKey('default', name)),
        logger: silentLogger,
        observe: () => ({
          nodeName: name,
          network: 'default',
          version: '0.1.0',
          startedAt: Date.now() - 60_000,
          agent: ready ? { ok: true, reason: 'ok' } : { ok: false, reason: 'converging the dataplane' },
          lease: { name: `10.5.${subnet}.0-24`, subnet: `10.5.${subnet}.0/24`, reserved: false },
          publicIP: `192.0.2.${subnet}`,
        }),
      });
      if (ready) pub.reconciled({ desired: 2, failures: 0 });
      await pub.check();
      stops.push(async () => {
        await pub.stop();
        await lease.revoke();
      });
      return pub;
    };
    const done = async () => {
      for (const s of stops) await s();
      store.close();
    };
    return { prefix, run, host, done };
  }

  it('shows readiness per host in get leases -o wide and get nodes, in every output format', async () => {
    const e = await env();
    try {
      await e.host('h1', 1, true);
      await e.host('h2', 2, false);
      // A flanneld host: a lease, no status record.
      const fl = fx.admin.client.lease(3600, { autoKeepAlive: false });
      await fl.put(`${e.prefix}/subnets/10.5.3.0-24`).value('{"PublicIP":"192.0.2.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:03"}}');

      const wide = await e.run('get', 'leases', '-o', 'wide');
      expect(wide).toMatchObject({ code: 0, stderr: '' });
      const lines = wide.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/\sREADY\s+PEERS\s+LAST-SYNC\s+VERSION$/);
      expect(lines[1]).toMatch(/^10\.5\.1\.0-24\s+h1\s.*\syes\s+2\/2\s+\d+s\s+0\.1\.0$/);
      expect(lines[2]).toMatch(/^10\.5\.2\.0-24\s+h2\s.*\sno\s+0\/0\s+<none>\s+0\.1\.0$/);
      expect(lines[3]).toMatch(/^10\.5\.3\.0-24\s+<none>\s.*\sunknown\s+<none>\s+<none>\s+<none>$/);

      const nodes = await e.run('get', 'nodes');
      expect(nodes.code).toBe(0);
      expect(nodes.stdout).toMatch(/^NAME\s+READY\s+SUBNET\s+PEERS\s+LAST-SYNC\s+VERSION\s+AGE\nh1\s+yes\s+10\.5\.1\.0\/24\s+2\/2\s+\d+s\s+0\.1\.0\s+(59|60|61)s\nh2\s+no\s+10\.5\.2\.0\/24\s+0\/0\s+<none>\s+0\.1\.0\s+(59|60|61)s\n$/);
      expect((await e.run('get', 'nodes', '-o', 'wide')).stdout).toMatch(/\nh2\s.*\s10\.5\.2\.0-24\s+192\.0\.2\.2\s+converging the dataplane\n$/);
      expect((await e.run('get', 'nodes', '-o', 'name')).stdout).toBe('node.weft.io/h1\nnode.weft.io/h2\n');
      const one = JSON.parse((await e.run('get', 'node', 'h1', '-o', 'json')).stdout);
      expect(one).toMatchObject({
        apiVersion: 'weft.io/v1alpha1',
        kind: 'Node',
        metadata: { name: 'h1' },
        status: { network: 'default', ready: true, lease: '10.5.1.0-24', leaseFound: true, subnet: '10.5.1.0/24', peers: { desired: 2, programmed: 2, skipped: 0 }, version: '0.1.0' },
      });
      const list = JSON.parse((await e.run('get', 'nodes', '-o', 'json')).stdout);
      expect([list.kind, list.items.length]).toEqual(['List', 2]);
      const docs = parseAllDocuments((await e.run('get', 'nodes', '-o', 'yaml')).stdout).map((d) => d.toJS() as { status: { ready: boolean } });
      expect(docs.map((d) => d.status.ready)).toEqual([true, false]);
      expect(await e.run('get', 'node', 'h7')).toMatchObject({ code: 1, stderr: expect.stringMatching(/nodes.weft.io "h7" not found/) });
      await fl.revoke();
    } finally {
      await e.done();
    }
  });

  it('describes one lease: key, value fields, etcd lease, reservation and node status', async () => {
    const e = await env();
    try {
      await e.host('h1', 1, true);
      const r = await e.run('describe', 'lease', '10.5.1.0-24');
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^Name: +10\\.5\\.1\\.0-24\\nNetwork: +default\\nKey: +${e.prefix}/subnets/10\\.5\\.1\\.0-24\\n`));
      expect(r.stdout).toMatch(/\nNode: +h1\nPublic IP: +192\.0\.2\.1\nBackend: +vxlan, VNI 1, VTEP MAC 02:00:00:00:00:01\n/);
      expect(r.stdout).toMatch(/\nEtcd Lease: +[0-9a-f]+, TTL 3600s, (59m|60m) left \(expires \S+\)\nReservation: +<none>\n/);
      expect(r.stdout).toMatch(new RegExp(`\\nNode Status:\\n  Key: +${e.prefix}/_weft/nodes/default/h1\\n  Ready: +yes\\n  Peers: +2 programmed of 2 desired\\n  Last Sync: +\\d+s ago`));
      expect(await e.run('describe', 'lease', '10.5.99.0-24')).toMatchObject({ code: 1, stderr: expect.stringMatching(/leases.weft.io "10.5.99.0-24" not found/) });
      expect(await e.run('describe', 'network', 'default')).toMatchObject({ code: 1, stderr: expect.stringMatching(/weft describe lease NAME/) });
    } finally {
      await e.done();
    }
  });

  it('shows hostile records as unknown, naming their keys, and never fails on them', async () => {
    const e = await env();
    try {
      await e.host('h1', 1, true);
      const put = (key: string, value: string) => fx.admin.client.put(`${e.prefix}/_weft/nodes/${key}`).value(value);
      // The agent's record with one field made hostile.
      const own = JSON.parse((await fx.admin.get(`${e.prefix}/_weft/nodes/default/h1`))!.value) as Record<string, unknown>;
      await put('default/h1', JSON.stringify({ ...own, ready: '\u001b[2J', peers: { desired: 1, programmed: 5, skipped: 0 } }));
      await put('default/evil\u001b]0;x\u0007', 'not json');
      await put('default/big', JSON.stringify({ v: 1, pad: 'x'.repeat(100_000) }));
      await put('no-network', '{}');

      const wide = await e.run('get', 'leases', '-o', 'wide');
      expect(wide.code).toBe(0);
      expect(wide.stdout.split('\n')[1]).toMatch(/^10\.5\.1\.0-24\s+h1\s.*\sunknown\s+<none>\s+<none>\s+<none>$/);
      const nodes = await e.run('get', 'nodes');
      expect(nodes.code).toBe(0);
      // A key without a network adds the NETWORK column, as leases of several networks do.
      expect(nodes.stdout.split('\n').slice(1, -1).map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([
        'default big unknown',
        'default evil\\u001b]0;x\\u0007 unknown',
        'default h1 unknown',
        '<unknown> no-network unknown',
      ]);
      for (const out of [nodes.stdout, nodes.stderr]) expect(out).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
      const warnings = nodes.stderr.trimEnd().split('\n');
      expect(warnings).toHaveLength(4);
      expect(warnings).toContain(`warning: unreadable node status at ${e.prefix}/_weft/nodes/default/h1: ready "\\u001b[2J" is not true or false; peers.programmed 5 is more than peers.desired 1`);
      expect(warnings).toContain(`warning: unreadable node status at ${e.prefix}/_weft/nodes/default/big: value is 100016 bytes, over 4096`);
      expect(warnings).toContain(`warning: unreadable node status at ${e.prefix}/_weft/nodes/no-network: the key is not ${e.prefix}/_weft/nodes/NETWORK/NODE`);
      const d = await e.run('describe', 'lease', '10.5.1.0-24');
      expect(d.code).toBe(0);
      expect(d.stdout).toContain(`Node Status:      unreadable record at ${e.prefix}/_weft/nodes/default/h1: ready`);
      for (const key of ['default/h1', 'default/evil\u001b]0;x\u0007', 'default/big', 'no-network']) await fx.admin.client.delete().key(`${e.prefix}/_weft/nodes/${key}`);
    } finally {
      await e.done();
    }
  });
});
