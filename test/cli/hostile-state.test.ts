// Hostile state in etcd and careless manifests, against a real etcd (issue 14): each case
// was reproduced on main before its fix; docs/hostile-state.md lists them all.
import { describe, expect, it } from 'vitest';
import { cliEnv } from '../helpers/cli-env.js';
import { Cidr } from '../../src/alloc/cidr.js';
import { etcdFlags, weft } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

const API = 'apiVersion: weft.io/v1alpha1';

function network(name: string, spec: string): string {
  return `${API}\nkind: Network\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

/** No terminal escape, bell or other control character left raw (newlines end lines only). */
function expectPrintable(text: string): void {
  // eslint-disable-next-line no-control-regex
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
}

describe('hostile state: output', () => {
  const fx = useEtcd();

  it('escapes control characters in every table cell and -o name line', async () => {
    const e = cliEnv(fx);
    const evil = '10.5.0.0/16\u001b[2J\u0007\nforged   line';
    await fx.admin.client.put(`${e.prefix}/config`).value(JSON.stringify({ Network: evil, Backend: { Type: 'vxlan' } }));
    await fx.admin.client.put(`${e.prefix}/subnets/10.5.3.0-24`).value('{"PublicIP":"0.0.0.0","PublicIPv6":null,"NodeName":"n\u001b]0;pwned\u0007\nx"}');
    await e.lease('/subnets/10.5.4.0-24\u001b[31m', '{"PublicIP":"192.0.2.4","PublicIPv6":null,"BackendType":"vxlan"}');
    for (const args of [
      ['get', 'networks'],
      ['get', 'networks', '-o', 'wide'],
      ['get', 'subnets', '-o', 'wide'],
      ['get', 'leases', '-o', 'wide'],
      ['get', 'leases', '-o', 'name'],
      ['get', 'subnets', '-o', 'name'],
    ]) {
      const r = await e.run(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expectPrintable(r.stdout);
      expectPrintable(r.stderr);
    }
    const wide = await e.run('get', 'networks', '-o', 'wide');
    expect(wide.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(wide.stdout).toContain('\\u001b[2J\\u0007\\u000aforged');
    expect((await e.run('get', 'leases', '-o', 'name')).stdout).toContain('lease.weft.io/10.5.4.0-24\\u001b[31m\n');
  });
});

describe('hostile state: credentials', () => {
  it('an unreadable --etcd-password-file is an error line and exit 2, not a stack trace', async () => {
    const r = await weft(['get', 'networks', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-username', 'u', '--etcd-password-file', '/nonexistent/weft-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --etcd-password-file: cannot read \/nonexistent\/weft-password: ENOENT[^\n]*\n$/);
    expect(r.stdout).toBe('');
  });
});

const vxlan = (cidr: string, vni?: number, extra = '') =>
  `  cidr: ${cidr}\n${extra}  backend:\n    type: vxlan\n${vni === undefined ? '' : `    vni: ${vni}\n`}`;

describe('hostile state: apply refuses what would hurt the hosts', () => {
  const fx = useEtcd();

  it('refuses ranges shorter than /8 and special ranges, naming the field and line', async () => {
    const e = cliEnv(fx);
    const cases: [string, RegExp][] = [
      ['0.0.0.0/0', /spec\.cidr: 0\.0\.0\.0\/0 is shorter than \/8/],
      ['10.0.0.0/7', /spec\.cidr: 10\.0\.0\.0\/7 is shorter than \/8/],
      ['127.0.0.0/8', /spec\.cidr: 127\.0\.0\.0\/8 overlaps the loopback range 127\.0\.0\.0\/8/],
      ['224.0.0.0/8', /spec\.cidr: 224\.0\.0\.0\/8 overlaps the multicast range 224\.0\.0\.0\/4/],
      ['169.254.0.0/16', /spec\.cidr: \S+ overlaps the link-local range 169\.254\.0\.0\/16/],
      ['240.0.0.0/8', /spec\.cidr: \S+ overlaps the reserved range/],
      ['0.0.0.0/8', /spec\.cidr: \S+ overlaps "this network"/],
    ];
    for (const [cidr, want] of cases) {
      const r = await e.apply(network('default', vxlan(cidr)), '--dry-run');
      expect(r.code, cidr).toBe(1);
      expect(r.stderr, cidr).toMatch(new RegExp(`^<stdin>:6: network/default: ${want.source}`));
    }
    const v6 = await e.apply(network('default', '  ipv6Cidr: ff00::/16\n  backend:\n    type: vxlan\n'), '--dry-run');
    expect([v6.code, v6.stderr]).toEqual([1, '<stdin>:6: network/default: spec.ipv6Cidr: ff00::/16 overlaps the multicast range ff00::/8, which the kernel does not route as unicast\n']);
    const mapped = await e.apply(network('default', '  ipv6Cidr: ::ffff:0:0/96\n  backend:\n    type: vxlan\n'), '--dry-run');
    expect(mapped.stderr).toMatch(/spec\.ipv6Cidr: ::ffff:0:0\/96 overlaps the IPv4-mapped range ::ffff:0:0\/96/);
    expect((await e.apply(network('default', vxlan('10.0.0.0/8')), '--dry-run')).code).toBe(0);
    expect(await e.keys()).toEqual([]);
  });

  it('refuses VNIs whose device name the kernel cannot hold, per the network\'s families', async () => {
    const e = cliEnv(fx);
    const dual = await e.apply(network('default', vxlan('10.5.0.0/16', 123456, '  ipv6Cidr: fd00:5::/48\n')), '--dry-run');
    expect(dual.code).toBe(1);
    expect(dual.stderr).toBe(
      "<stdin>:10: network/default: spec.backend.vni: VNI 123456 makes the device name flannel-v6.123456, longer than the kernel's 15 characters; use a VNI up to 9999\n",
    );
    const v4 = await e.apply(network('default', vxlan('10.5.0.0/16', 10_000_000)), '--dry-run');
    expect(v4.stderr).toMatch(/spec\.backend\.vni: VNI 10000000 makes the device name flannel\.10000000, longer than/);
    expect((await e.apply(network('default', vxlan('10.5.0.0/16', 9_999_999)), '--dry-run')).code).toBe(0);
    expect((await e.apply(network('default', vxlan('10.5.0.0/16', 123456)), '--dry-run')).code).toBe(0);
  });

  it('refuses a second vxlan Network with a VNI or a range another one uses, naming it', async () => {
    const e = cliEnv(fx);
    expect((await e.apply(network('default', vxlan('10.5.0.0/16')))).code).toBe(0);
    const blue = await e.apply(network('blue', vxlan('10.6.0.0/16')));
    expect(blue.code).toBe(1);
    expect(blue.stderr).toBe(
      '<stdin>:7: network/blue: spec.backend.vni: VNI 1 is already used by network/default; two vxlan Networks with one VNI would fight over flannel.1 on a host that joins both\n',
    );
    // In one apply too: the second document sees the first.
    const both = await e.apply(`${network('red', vxlan('10.7.0.0/16', 7))}---\n${network('green', vxlan('10.8.0.0/16', 7))}`);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/network\/green: spec\.backend\.vni: VNI 7 is already used by network\/red/);
    const overlap = await e.apply(network('blue', vxlan('10.5.128.0/17', 2)));
    expect(overlap.stderr).toMatch(/network\/blue: spec\.cidr: 10\.5\.128\.0\/17 overlaps network\/default \(10\.5\.0\.0\/16\)/);
    expect((await e.apply(network('blue', vxlan('10.6.0.0/16', 2)))).code).toBe(0);
    expect((await e.apply(network('gw', '  cidr: 10.9.0.0/16\n  backend:\n    type: host-gw\n'))).code).toBe(0);
  });

  it('refuses a Network that overlaps the network of one of this host\'s interfaces', async () => {
    const e = cliEnv(fx);
    const hostNetworks = () => [{ iface: 'eth0', net: Cidr.parse('192.168.77.0/24')!, address: '192.168.77.10/24' }];
    const r = await weft(['apply', '-f', '-', ...etcdFlags(fx.etcd.endpoint, e.prefix)], { stdin: network('default', vxlan('192.168.0.0/16')), hostNetworks });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "<stdin>:6: network/default: spec.cidr: 192.168.0.0/16 overlaps 192.168.77.0/24, the network of this host's interface eth0 (192.168.77.10/24); peer routes would take over the host's underlay\n",
    );
    const ok = await weft(['apply', '-f', '-', ...etcdFlags(fx.etcd.endpoint, e.prefix)], { stdin: network('default', vxlan('10.5.0.0/16')), hostNetworks });
    expect(ok.code).toBe(0);
  });
});

describe('hostile state: get networks shows a stored config agents refuse', () => {
  const fx = useEtcd();

  it('names the refusal in the PROBLEM column', async () => {
    const e = cliEnv(fx);
    await fx.admin.client.put(`${e.prefix}/config`).value('{"Network":"0.0.0.0/0","Backend":{"Type":"vxlan","VNI":1}}');
    const r = await e.run('get', 'networks', '-o', 'wide');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/agents refuse it: spec\.cidr: 0\.0\.0\.0\/0 is shorter than \/8/);
  });
});

describe('hostile state: describe lease says why agents leave a lease out', () => {
  const fx = useEtcd();

  it('names the screen\'s reason for a special public IP and for a prefix that is not the subnet length', async () => {
    const e = cliEnv(fx);
    expect((await e.apply(network('default', vxlan('10.5.0.0/16')))).code).toBe(0);
    const value = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:09"}}`;
    await e.lease('/subnets/10.5.9.0-24', value('224.0.0.1'));
    await e.lease('/subnets/10.5.10.7-32', value('192.0.2.7'));
    await e.lease('/subnets/10.5.11.0-24', value('192.0.2.11'));
    const multicast = await e.run('describe', 'lease', '10.5.9.0-24');
    expect(multicast.stdout).toMatch(/^Left Out: {9}by every agent: IPv4: public IP 224\.0\.0\.1 is in the multicast range 224\.0\.0\.0\/4 \(public-ip\)$/m);
    const slash32 = await e.run('describe', 'lease', '10.5.10.7-32');
    expect(slash32.stdout).toMatch(/^Left Out: {9}by every agent: IPv4: subnet 10\.5\.10\.7\/32 is not a \/24, the network's subnet length \(prefix-length\)$/m);
    expect((await e.run('describe', 'lease', '10.5.11.0-24')).stdout).not.toContain('Left Out');
  });
});
