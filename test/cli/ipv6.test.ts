// The CLI with IPv6: dual-stack and IPv6-only Networks, Subnets and Leases against a real
// etcd, in Flannel's bytes, with names that stay valid for keys holding '&' and ':'.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { REPO } from '../helpers/cli.js';
import { cliEnv } from '../helpers/cli-env.js';
import { useEtcd } from '../helpers/etcd.js';

const FLANNEL_DUAL =
  '{"PublicIP":"192.168.64.3","PublicIPv6":"fc00::1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:55"}}';
const FLANNEL_V6ONLY = '{"PublicIP":"0.0.0.0","PublicIPv6":"fc00::2","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:56"},"NodeName":"h6"}';

const doc = (kind: string, name: string, spec: Record<string, unknown>) => stringify({ apiVersion: 'weft.io/v1alpha1', kind, metadata: { name }, spec });

describe('weft with IPv6 networks', () => {
  const fx = useEtcd('cli6');

  const env = () => cliEnv(fx);

  it('applies the dual-stack example: flannel config bytes, per-stack capacity, and a YAML round trip', async () => {
    const e = env();
    const r = await e.apply(readFileSync(`${REPO}examples/dual-stack.yaml`, 'utf8'));
    expect([r.code, r.stdout, r.stderr]).toEqual([0, 'network.weft.io/dual created\n', '']);
    expect((await e.get('/dual/config'))!.value).toBe(
      '{"Network":"10.7.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd00:7::/48","IPv6SubnetLen":64,"Backend":{"Type":"vxlan","VNI":7}}',
    );
    const l = await e.lease('/dual/subnets/10.7.52.0-24&fd00:7:0:34::-64', FLANNEL_DUAL);
    const table = (await e.run('get', 'networks')).stdout;
    expect(table).toMatch(/^NAME\s+CIDR\s+SUBNETLEN\s+BACKEND\s+CAPACITY\s+LEASES\s+FREE\s+AGE\ndual\s+10\.7\.0\.0\/16,fd00:7::\/48\s+24,64\s+vxlan\s+255,65535\s+1\s+254,65534\s+\d+s\n$/);
    const wide = (await e.run('get', 'networks', '-o', 'wide')).stdout;
    expect(wide).toMatch(/\s10\.7\.1\.0,fd00:7:0:1::\s+10\.7\.255\.0,fd00:7:0:ffff::\s/);
    const got = JSON.parse((await e.run('get', 'network', 'dual', '-o', 'json')).stdout);
    expect(got.spec).toEqual({ cidr: '10.7.0.0/16', subnetLength: 24, ipv6Cidr: 'fd00:7::/48', ipv6SubnetLength: 64, backend: { type: 'vxlan', vni: 7 } });
    expect(got.status).toEqual({ capacity: 255, leases: 1, reservations: 0, free: 254, ipv6Capacity: 65535, ipv6Free: 65534 });
    // get -o yaml | apply: unchanged, and diff has nothing to say.
    const yaml = (await e.run('get', 'network', 'dual', '-o', 'yaml')).stdout;
    expect((await e.apply(yaml)).stdout).toBe('network.weft.io/dual unchanged\n');
    expect((await e.pipe(yaml, 'diff', '-f', '-')).code).toBe(0);
    // Dropping the IPv6 range would strand the dual-stack lease: refused without --force.
    const v4only = await e.apply(doc('Network', 'dual', { cidr: '10.7.0.0/16', backend: { type: 'vxlan', vni: 7 } }));
    expect(v4only.code).toBe(1);
    expect(v4only.stderr).toContain('leaves 1 subnet outside 10.7.0.0/16 /24 10.7.1.0..10.7.255.0: 10.7.52.0-24&fd00:7:0:34::-64 (leased by 192.168.64.3)');
    await l.revoke();
  });

  it('applies an IPv6-only Network and shows its IPv6 capacity', async () => {
    const e = env();
    const r = await e.apply(doc('Network', 'default', { ipv6Cidr: 'FD00:8::/47', ipv6SubnetLength: 64, backend: { type: 'host-gw' } }));
    expect(r.code).toBe(0);
    expect((await e.get('/config'))!.value).toBe('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:8::/47","IPv6SubnetLen":64,"Backend":{"Type":"host-gw"}}');
    expect((await e.run('get', 'networks')).stdout).toMatch(/\ndefault\s+fd00:8::\/47\s+64\s+host-gw\s+131071\s+0\s+131071\s/);
    const got = JSON.parse((await e.run('get', 'network', 'default', '-o', 'json')).stdout);
    expect(got.status).toEqual({ leases: 0, reservations: 0, ipv6Capacity: 131071, ipv6Free: 131071 });
    // The spec reads back as stored (canonical); applying it again changes nothing.
    expect((await e.apply((await e.run('get', 'network', 'default', '-o', 'yaml')).stdout)).stdout).toBe('network.weft.io/default unchanged\n');
  });

  it('reserves a subnet of each stack in one key, and checks each against its stack', async () => {
    const e = env();
    await e.apply(doc('Network', 'default', { cidr: '10.7.0.0/16', ipv6Cidr: 'fd00:7::/48', backend: { type: 'vxlan' } }));
    const ok = await e.apply(doc('Subnet', 'gw-6', { network: 'default', cidr: '10.7.3.0/24', ipv6Cidr: 'fd00:7:0:3::/64', node: 'gw-6' }));
    expect([ok.code, ok.stdout, ok.stderr]).toEqual([0, 'subnet.weft.io/gw-6 created\n', '']);
    const kv = (await e.get('/subnets/10.7.3.0-24&fd00:7:0:3::-64'))!;
    expect([kv.value, kv.leaseId]).toEqual(['{"PublicIP":"255.255.255.255","PublicIPv6":null,"NodeName":"gw-6"}', '0']);
    const yaml = (await e.run('get', 'subnet', 'gw-6', '-o', 'yaml')).stdout;
    expect(parse(yaml).spec).toEqual({ network: 'default', cidr: '10.7.3.0/24', ipv6Cidr: 'fd00:7:0:3::/64', node: 'gw-6' });
    expect((await e.apply(yaml)).stdout).toBe('subnet.weft.io/gw-6 unchanged\n');
    expect((await e.run('get', 'subnets')).stdout).toMatch(/\ngw-6\s+default\s+10\.7\.3\.0\/24,fd00:7:0:3::\/64\s+gw-6\s/);

    const refused = async (spec: Record<string, unknown>) => {
      const r = await e.apply(doc('Subnet', 'other', { network: 'default', node: 'h2', ...spec }));
      expect(r.code).toBe(1);
      return r.stderr.split('\n').filter(Boolean).map((l) => l.replace(/^<stdin>:\d+: subnet\/other: /, ''));
    };
    expect(await refused({ cidr: '10.7.4.0/24' })).toEqual(['spec.ipv6Cidr: is required: network "default" has an IPv6 range (fd00:7::/48)']);
    expect(await refused({ cidr: '10.7.4.0/24', ipv6Cidr: 'fd00:7:0:3::/64' })).toEqual(['spec.ipv6Cidr: 10.7.4.0/24 + fd00:7:0:3::/64 overlaps subnet/gw-6 (10.7.3.0/24 + fd00:7:0:3::/64)']);
    expect(await refused({ cidr: '10.7.4.0/24', ipv6Cidr: 'fd00:7:0:4::/80' })).toEqual(['spec.ipv6Cidr: fd00:7:0:4::/80 must be a /64, the ipv6SubnetLength of network "default"']);
    expect(await refused({ cidr: '10.7.4.0/24', ipv6Cidr: 'fd00:9::/64' })).toEqual(['spec.ipv6Cidr: fd00:9::/64 is outside network "default" (fd00:7::/48)']);
    expect(await refused({ cidr: '10.7.4.0/24', ipv6Cidr: 'fd00:7:0:4::/64', publicIPv6: '2001:db8::4' })).toEqual([
      'spec.publicIPv6: hosts in network "default" are matched by node or publicIP (publicIPv6 is for IPv6-only networks)',
    ]);
    expect(await e.keys()).toEqual(['/_weft/networks/default', '/_weft/subnets/gw-6', '/config', '/subnets/10.7.3.0-24&fd00:7:0:3::-64']);
  });

  it('reserves in an IPv6-only network by publicIPv6, in the IPv6-only key form', async () => {
    const e = env();
    await e.apply(doc('Network', 'default', { ipv6Cidr: 'fd00:8::/48', backend: { type: 'vxlan' } }));
    const r = await e.apply(doc('Subnet', 'h5', { network: 'default', ipv6Cidr: 'fd00:8:0:5::/64', publicIPv6: '2001:DB8::5' }));
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect((await e.get('/subnets/0.0.0.0-0&fd00:8:0:5::-64'))!.value).toBe('{"PublicIP":"255.255.255.255","PublicIPv6":"2001:db8::5"}');
    const bad = await e.apply(doc('Subnet', 'h6', { network: 'default', cidr: '10.0.0.0/24', ipv6Cidr: 'fd00:8:0:6::/64', publicIP: '192.0.2.6' }));
    expect(bad.stderr.split('\n').filter(Boolean).map((l) => l.replace(/^<stdin>:\d+: subnet\/h6: /, ''))).toEqual([
      'spec.cidr: network "default" is IPv6-only; reserve its IPv6 subnet with spec.ipv6Cidr',
      'spec.publicIP: network "default" is IPv6-only: its hosts are matched by node or publicIPv6',
    ]);
  });

  it('lists dual-stack and IPv6-only leases under valid names, with both subnets and PublicIPv6 in -o wide', async () => {
    const e = env();
    await e.apply(doc('Network', 'default', { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: { type: 'vxlan' } }));
    const l1 = await e.lease('/subnets/10.5.52.0-24&fd00:5:0:34::-64', FLANNEL_DUAL);
    const l2 = await e.lease('/subnets/0.0.0.0-0&fd00:5:0:35::-64', FLANNEL_V6ONLY);
    const plain = (await e.run('get', 'leases')).stdout.split('\n');
    expect(plain[0]).toMatch(/^NAME\s+NODE\s+PUBLIC-IP\s+BACKEND\s+VTEP-MAC\s+AGE\s+EXPIRES$/);
    expect(plain[1]).toMatch(/^10\.5\.52\.0-24\.fd00-5-0-34-0-0-0-0-64\s+<none>\s+192\.168\.64\.3\s+vxlan\s+c6:d2:32:6f:8f:44\s/);
    // An IPv6-only lease shows its IPv6 public address and MAC (its PublicIP is flannel's 0.0.0.0).
    expect(plain[2]).toMatch(/^fd00-5-0-35-0-0-0-0-64\s+h6\s+fc00::2\s+vxlan\s+ca:11:22:33:44:56\s/);
    const wide = (await e.run('get', 'leases', '-o', 'wide')).stdout.split('\n');
    expect(wide[0]).toMatch(/\sVNI\s+SUBNET\s+IPV6-SUBNET\s+PUBLIC-IPV6\s+IPV6-VTEP-MAC\s+READY\s+PEERS\s+LAST-SYNC\s+VERSION$/);
    expect(wide[1]).toMatch(/\s1\s+10\.5\.52\.0\/24\s+fd00:5:0:34::\/64\s+fc00::1\s+ca:11:22:33:44:55\s+unknown\s/);
    expect(wide[2]).toMatch(/\s1\s+<none>\s+fd00:5:0:35::\/64\s+fc00::2\s+ca:11:22:33:44:56\s+unknown\s/);

    // By mapped name or by key; the YAML validates (a Lease is refused only for being a Lease).
    const byKey = parse((await e.run('get', 'lease', '10.5.52.0-24&fd00:5:0:34::-64', '-o', 'yaml')).stdout);
    const yaml = (await e.run('get', 'lease', '10.5.52.0-24.fd00-5-0-34-0-0-0-0-64', '-o', 'yaml')).stdout;
    const lease = parse(yaml);
    expect(byKey.metadata.name).toBe(lease.metadata.name);
    expect(lease.spec).toMatchObject({
      network: 'default',
      subnet: '10.5.52.0/24',
      ipv6Subnet: 'fd00:5:0:34::/64',
      publicIP: '192.168.64.3',
      publicIPv6: 'fc00::1',
      backend: { type: 'vxlan', vni: 1, vtepMAC: 'c6:d2:32:6f:8f:44', ipv6VtepMAC: 'ca:11:22:33:44:55' },
    });
    const v6only = parse((await e.run('get', 'lease', 'fd00-5-0-35-0-0-0-0-64', '-o', 'yaml')).stdout);
    expect(v6only.spec.publicIP).toBeUndefined();
    expect(v6only.spec.subnet).toBeUndefined();
    for (const y of [yaml, stringify(v6only)]) {
      const r = await e.apply(y);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^<stdin>:2: lease\/\S+: kind: Leases are written by agents and cannot be applied; reserve a subnet with kind Subnet instead\n$/);
    }
    // Deleting by mapped name removes flannel's key.
    expect((await e.run('delete', 'lease', 'fd00-5-0-35-0-0-0-0-64')).stdout).toBe('lease.weft.io/fd00-5-0-35-0-0-0-0-64 deleted\n');
    expect(await e.get('/subnets/0.0.0.0-0&fd00:5:0:35::-64')).toBeUndefined();
    await l1.revoke();
    await l2.revoke().catch(() => {});
  });

  it('shows a lease-less dual-stack key written by etcdctl as a Subnet under its mapped name', async () => {
    const e = env();
    await e.apply(doc('Network', 'default', { cidr: '10.5.0.0/16', ipv6Cidr: 'fd00:5::/48', backend: { type: 'vxlan' } }));
    await fx.admin.client.put(`${e.prefix}/subnets/10.5.9.0-24&fd00:5:0:9::-64`).value('{"PublicIP":"192.0.2.9","PublicIPv6":null}');
    const subnets = JSON.parse((await e.run('get', 'subnets', '-o', 'json')).stdout);
    expect(subnets.items.map((s: { metadata: { name: string }; spec: unknown }) => [s.metadata.name, s.spec])).toEqual([
      ['10.5.9.0-24.fd00-5-0-9-0-0-0-0-64', { network: 'default', cidr: '10.5.9.0/24', ipv6Cidr: 'fd00:5:0:9::/64', publicIP: '192.0.2.9' }],
    ]);
    expect((await e.run('delete', 'subnet', '10.5.9.0-24.fd00-5-0-9-0-0-0-0-64')).code).toBe(0);
    expect(await e.keys()).toEqual(['/_weft/networks/default', '/config']);
  });
});
