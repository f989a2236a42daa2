// weft get and weft delete against a real etcd, including keys written the way flanneld
// and etcdctl write them.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { cliEnv } from '../helpers/cli-env.js';
import { useEtcd } from '../helpers/etcd.js';

const VXLAN_LEASE = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
const HOSTGW_LEASE = '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"host-gw"}';

function network(name: string, cidr: string, type = 'vxlan') {
  return stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Network', metadata: { name }, spec: { cidr, backend: { type } } });
}

describe('weft get and delete', () => {
  const fx = useEtcd();

  const env = () => cliEnv(fx);

  it('shows leases written with flannel\'s exact bytes, with node, public IP, backend, VTEP MAC and expiry', async () => {
    const e = env();
    await e.apply(network('default', '10.5.0.0/16'));
    const l1 = await e.lease('/subnets/10.5.52.0-24', VXLAN_LEASE, 3600);
    const l2 = await e.lease('/subnets/10.5.53.0-24', VXLAN_LEASE.replace('192.168.64.3', '192.168.64.4').replace('}}', '},"NodeName":"h4"}').replace('8f:44', '8f:45'), 7200);
    const r = await e.run('get', 'leases');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^NAME\s+NODE\s+PUBLIC-IP\s+BACKEND\s+VTEP-MAC\s+AGE\s+EXPIRES\n10\.5\.52\.0-24\s+<none>\s+192\.168\.64\.3\s+vxlan\s+c6:d2:32:6f:8f:44\s+\d+s\s+(59m|60m)\n10\.5\.53\.0-24\s+h4\s+192\.168\.64\.4\s+vxlan\s+c6:d2:32:6f:8f:45\s+\d+s\s+(119m|120m)\n$/,
    );
    const one = JSON.parse((await e.run('get', 'lease', '10.5.52.0-24', '-o', 'json')).stdout);
    expect(one.spec).toMatchObject({ network: 'default', subnet: '10.5.52.0/24', publicIP: '192.168.64.3', backend: { type: 'vxlan', vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44' } });
    const left = Date.parse(one.spec.expiry) - Date.now();
    expect(left).toBeGreaterThan(3500_000);
    expect(left).toBeLessThanOrEqual(3601_000);
    const net = JSON.parse((await e.run('get', 'networks', 'default', '-o', 'json')).stdout);
    expect(net.status).toEqual({ capacity: 255, leases: 2, reservations: 0, free: 253 });
    expect((await e.run('get', 'networks')).stdout).toMatch(/^NAME\s+CIDR\s+SUBNETLEN\s+BACKEND\s+CAPACITY\s+LEASES\s+FREE\s+AGE\ndefault\s+10\.5\.0\.0\/16\s+24\s+vxlan\s+255\s+2\s+253\s+\d+s\n$/);
    await l1.revoke();
    await l2.revoke();
  });

  it('shows a config and a lease-less key written by etcdctl as a Network and a Subnet', async () => {
    const e = env();
    await fx.admin.client.put(`${e.prefix}/config`).value('{"Network":"10.3.0.0/16","Backend":{"Type":"host-gw"}}');
    await fx.admin.client.put(`${e.prefix}/subnets/10.3.7.0-24`).value(HOSTGW_LEASE);
    expect((await e.run('get', 'net')).stdout).toMatch(/\ndefault\s+10\.3\.0\.0\/16\s+24\s+host-gw\s+255\s+1\s+254\s+<unknown>\n$/);
    const subnets = await e.run('get', 'subnets');
    expect(subnets.stdout).toMatch(/^NAME\s+NETWORK\s+CIDR\s+NODE\s+PUBLIC-IP\s+AGE\n10\.3\.7\.0-24\s+default\s+10\.3\.7\.0\/24\s+<none>\s+10\.0\.0\.1\s+<unknown>\n$/);
    expect((await e.run('get', 'leases')).stdout).toMatch(/\n10\.3\.7\.0-24\s+<none>\s+10\.0\.0\.1\s+host-gw\s+<none>\s+<unknown>\s+<reserved>\n$/);
    const del = await e.run('delete', 'subnet', '10.3.7.0-24');
    expect(del).toMatchObject({ code: 0, stdout: 'subnet.weft.io/10.3.7.0-24 deleted\n' });
    expect(await e.keys()).toEqual(['/config']);
  });

  it('prints yaml, json, name and wide; missing objects are exit 1', async () => {
    const e = env();
    await e.apply([network('default', '10.5.0.0/16'), network('blue', '10.9.0.0/16', 'host-gw')].join('---\n'));
    const names = await e.run('get', 'networks', '-o', 'name');
    expect(names.stdout).toBe('network.weft.io/default\nnetwork.weft.io/blue\n');
    const yaml = (await e.run('get', 'networks', '-o', 'yaml')).stdout;
    const docs = parseAllDocuments(yaml).map((d) => (d as { toJS(): { metadata: { name: string } } }).toJS());
    expect(docs.map((d) => d.metadata.name)).toEqual(['default', 'blue']);
    const list = JSON.parse((await e.run('get', 'networks', '-o', 'json')).stdout);
    expect([list.kind, list.items.length]).toEqual(['List', 2]);
    expect((await e.run('get', 'networks', '-o', 'wide')).stdout).toMatch(/\nblue\s+10\.9\.0\.0\/16\s+24\s+host-gw\s+255\s+0\s+255\s+\d+s\s+0\s+10\.9\.1\.0\s+10\.9\.255\.0\s+<none>\s+<none>\s+24h\s+<none>\n$/);
    const missing = await e.run('get', 'network', 'nope');
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'error: networks.weft.io "nope" not found\n' });
    const empty = await e.run('get', 'leases');
    expect(empty).toEqual({ code: 0, stdout: '', stderr: 'No resources found\n' });
    const badFormat = await e.run('get', 'networks', '-o', 'xml');
    expect(badFormat.code).toBe(1);
    expect(badFormat.stderr).toContain('unknown output format "xml"');
  });

  it('adds a NETWORK column across networks and asks for --network when a name is ambiguous', async () => {
    const e = env();
    await e.apply([network('default', '10.5.0.0/16'), network('blue', '10.5.0.0/16')].join('---\n'));
    const a = await e.lease('/subnets/10.5.9.0-24', VXLAN_LEASE);
    const b = await e.lease('/blue/subnets/10.5.9.0-24', HOSTGW_LEASE);
    const table = (await e.run('get', 'leases')).stdout;
    expect(table).toMatch(/^NETWORK\s+NAME\s+NODE/);
    expect(table).toMatch(/\ndefault\s+10\.5\.9\.0-24\s+<none>\s+192\.168\.64\.3\s+vxlan/);
    expect(table).toMatch(/\nblue\s+10\.5\.9\.0-24\s+<none>\s+10\.0\.0\.1\s+host-gw/);
    const ambiguous = await e.run('delete', 'lease', '10.5.9.0-24');
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toBe('error: lease "10.5.9.0-24" exists in networks default, blue; choose one with --network\n');
    expect((await e.run('get', 'leases', '--network', 'blue', '-o', 'name')).stdout).toBe('lease.weft.io/10.5.9.0-24\n');
    const del = await e.run('delete', 'lease', '10.5.9.0-24', '--network', 'blue');
    expect(del).toMatchObject({ code: 0, stdout: 'lease.weft.io/10.5.9.0-24 deleted\n' });
    expect(await fx.admin.get(`${e.prefix}/blue/subnets/10.5.9.0-24`)).toBeUndefined();
    expect(await fx.admin.get(`${e.prefix}/subnets/10.5.9.0-24`)).toBeDefined();
    await a.revoke();
    await b.revoke();
  });

  it('evicts a dead host with weft delete lease, but points reservations at their Subnet', async () => {
    const e = env();
    await e.apply(network('default', '10.5.0.0/16'));
    await e.lease('/subnets/10.5.52.0-24', VXLAN_LEASE);
    expect((await e.run('delete', 'lease', '10.5.52.0-24')).stdout).toBe('lease.weft.io/10.5.52.0-24 deleted\n');
    expect(await fx.admin.get(`${e.prefix}/subnets/10.5.52.0-24`)).toBeUndefined();
    // The same from a file, e.g. what `weft get lease -o yaml` printed.
    await e.lease('/subnets/10.5.60.0-24', VXLAN_LEASE);
    const shown = (await e.run('get', 'lease', '10.5.60.0-24', '-o', 'yaml')).stdout;
    const fromFile = await e.pipe(shown, 'delete', '-f', '-');
    expect(fromFile).toEqual({ code: 0, stdout: 'lease.weft.io/10.5.60.0-24 deleted\n', stderr: '' });
    expect(await fx.admin.get(`${e.prefix}/subnets/10.5.60.0-24`)).toBeUndefined();
    await e.apply(stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Subnet', metadata: { name: 'gw' }, spec: { network: 'default', cidr: '10.5.3.0/24', node: 'gw' } }));
    const refused = await e.run('delete', 'lease', '10.5.3.0-24');
    expect(refused).toEqual({ code: 1, stdout: '', stderr: 'error: lease.weft.io/10.5.3.0-24: is the reservation subnet/gw; delete that Subnet instead (weft delete subnet gw)\n' });
    expect((await e.run('delete', 'subnet', 'gw')).stdout).toBe('subnet.weft.io/gw deleted\n');
    expect(await e.keys()).toEqual(['/_weft/networks/default', '/config']);
    const missing = await e.run('delete', 'lease', '10.5.99.0-24');
    expect(missing).toMatchObject({ code: 1, stderr: 'error: leases.weft.io "10.5.99.0-24" not found\n' });
    expect((await e.run('delete', 'lease', '10.5.99.0-24', '--ignore-not-found')).code).toBe(0);
  });

  it('refuses to delete a Network in use unless --force, which removes everything in one go', async () => {
    const e = env();
    await e.apply(
      [
        network('blue', '10.9.0.0/16'),
        stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Subnet', metadata: { name: 'r' }, spec: { network: 'blue', cidr: '10.9.3.0/24', publicIP: '192.0.2.3' } }),
      ].join('---\n'),
    );
    const l = await e.lease('/blue/subnets/10.9.4.0-24', VXLAN_LEASE);
    const refused = await e.run('delete', 'network', 'blue');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('error: network.weft.io/blue: still has 1 lease and 1 reservation (10.9.3.0-24, 10.9.4.0-24); delete them first or use --force\n');
    expect((await e.keys()).length).toBe(5);
    const forced = await e.run('delete', 'network', 'blue', '--force');
    expect(forced).toMatchObject({ code: 0, stdout: 'network.weft.io/blue deleted\n' });
    expect(await e.keys()).toEqual([]);
    await l.revoke();
  });

  it('deletes what a file declares, Subnets before their Network, checking resourceVersion', async () => {
    const e = env();
    const yaml = [
      network('default', '10.5.0.0/16'),
      stringify({ apiVersion: 'weft.io/v1alpha1', kind: 'Subnet', metadata: { name: 'gw-1' }, spec: { network: 'default', cidr: '10.5.3.0/24', node: 'gw-1' } }),
    ].join('---\n');
    await e.apply(yaml);
    const live = (await e.run('get', 'network', 'default', '-o', 'yaml')).stdout;
    await e.apply(yaml.replace('type: vxlan', 'type: vxlan\n    vni: 3'));
    const stale = await e.pipe(live, 'delete', '-f', '-');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('the object has been modified');
    const r = await e.pipe(yaml, 'delete', '-f', '-');
    expect(r).toMatchObject({ code: 0, stdout: 'subnet.weft.io/gw-1 deleted\nnetwork.weft.io/default deleted\n' });
    expect(await e.keys()).toEqual([]);
  });
});
