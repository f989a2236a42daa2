// The testbed's dual-stack and IPv6-only underlays: addresses, etcd reachability (over IPv6
// when there is no IPv4), containers built from IPv6 and dual-stack subnet.env files, ping6,
// and weft's IPv6 vxlan backend carrying container traffic between three hosts (programmed
// directly here; the agent's own IPv6 support is tested with the agent).
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { createBackend, IpRunner } from '../../src/dataplane/index.js';
import type { Backend, BackendSettings, Peer } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';
import { execIn, listNetns, nsPrefix } from '../../src/testbed/netns.js';
import { parseAnySubnetEnv } from '../../src/testbed/parse.js';
import { Testbed, UNDERLAY_IP, UNDERLAY_IP6, type Container, type Host, type UnderlayStack } from '../../src/testbed/topology.js';
import { waitFor } from '../helpers/wait.js';

function subnetEnv(i: number, stack: UnderlayStack): string {
  const v4 = `FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.${i}.1/24\n`;
  const v6 = `FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:${i}::1/64\n`;
  return `${stack === 'ipv6' ? '' : v4}${v6}FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n`;
}

async function addresses(ns: string, dev: string): Promise<string[]> {
  const r = await execIn(ns, 'ip', ['-json', 'addr', 'show', 'dev', dev]);
  const [link] = JSON.parse(r.stdout) as { addr_info: { family: string; local: string; prefixlen: number; scope: string }[] }[];
  return link!.addr_info.filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

describe.each<UnderlayStack>(['ipv6', 'dual'])('testbed with an %s underlay', (stack) => {
  let tb: Testbed;
  const hosts: Host[] = [];
  const containers: Container[] = [];

  beforeAll(async () => {
    tb = await Testbed.create({ stack, graceMs: 1000 });
    for (const i of [1, 2, 3]) hosts.push(await tb.addHost(i));
  });

  afterAll(async () => {
    await tb?.teardown();
  });

  it('addresses the underlay in the stack asked for, and reaches etcd over IPv6 when there is no IPv4', async () => {
    const [h1, h2] = hosts as [Host, Host];
    expect(h1.ip6).toBe('fd00:1::1');
    if (stack === 'ipv6') {
      expect([h1.ip, h1.ip4]).toEqual(['fd00:1::1', undefined]);
      expect(await addresses(h1.ns, 'eth0')).toEqual(['fd00:1::1/64']);
      expect(tb.etcdEndpoint).toBe(`http://[${UNDERLAY_IP6}]:2379`);
    } else {
      expect([h1.ip, h1.ip4]).toEqual(['192.0.2.1', '192.0.2.1']);
      expect(await addresses(h1.ns, 'eth0')).toEqual(['192.0.2.1/24', 'fd00:1::1/64']);
      expect(tb.etcdEndpoint).toBe(`http://${UNDERLAY_IP}:2379`);
      expect((await tb.ping(h1, h2.ip4!, { count: 1 })).received).toBe(1);
    }
    expect((await tb.ping6(h1, h2.ip6!, { count: 2, intervalSec: 0.05 })).received).toBe(2);
    expect((await tb.ping6(h1, UNDERLAY_IP6, { count: 1 })).received).toBe(1);
    // etcdctl and weft's own etcd client (the CLI, built to dist/) from a host namespace.
    expect((await tb.etcdctl(['put', '/weft-testbed/k', stack], { from: h1 })).exitCode).toBe(0);
    expect((await tb.etcdctl(['get', '--print-value-only', '/weft-testbed/k'], { from: h2 })).stdout.trim()).toBe(stack);
    const get = await tb.weft(['get', 'networks'], { from: h2 });
    expect([get.exitCode, get.stderr.trim()]).toEqual([0, 'No resources found']);
  });

  it('builds containers from the subnet.env: IPv6 always here, IPv4 only when the file has it', async () => {
    for (const h of hosts) writeFileSync(h.subnetFile, subnetEnv(h.index, stack));
    for (const h of hosts) containers.push(await tb.addContainer(h));
    const [c1] = containers as [Container];
    expect(c1.ip6).toBe('fd00:5:0:1::2');
    expect(c1.ip).toBe(stack === 'ipv6' ? 'fd00:5:0:1::2' : '10.5.1.2');
    expect(await addresses(c1.ns, 'eth0')).toEqual(stack === 'ipv6' ? ['fd00:5:0:1::2/64'] : ['10.5.1.2/24', 'fd00:5:0:1::2/64']);
    expect(await addresses(hosts[0]!.ns, 'cni0')).toEqual(stack === 'ipv6' ? ['fd00:5:0:1::1/64'] : ['10.5.1.1/24', 'fd00:5:0:1::1/64']);
    const routes = await execIn(c1.ns, 'ip', ['-6', 'route', 'show', 'default']);
    expect(routes.stdout).toContain('default via fd00:5:0:1::1 dev eth0');
    expect((await tb.ping6(c1, 'fd00:5:0:1::1', { count: 1 })).received).toBe(1);
    await expect(tb.ping(c1, 'fd00:5:0:1::1')).rejects.toThrow(/not an IPv4 address/);
    await expect(tb.ping6(c1, '10.5.1.1')).rejects.toThrow(/not an IPv6 address/);
  });

  it("carries container traffic between three hosts over weft's vxlan backends of the underlay's families", async () => {
    const families: (4 | 6)[] = stack === 'dual' ? [4, 6] : [6];
    const backends = new Map<string, Backend>();
    const macs = new Map<string, string>();
    for (const h of hosts) {
      for (const family of families) {
        const settings: BackendSettings = {
          type: 'vxlan',
          family,
          vni: 1,
          port: 0,
          directRouting: false,
          gbp: false,
          network: family === 6 ? Cidr6.parse('fd00:5::/48')! : Cidr.parse('10.5.0.0/16')!,
        };
        const address = family === 6 ? Ipv6.parse(h.ip6)! : Ipv4.parse(h.ip4)!;
        const uplink = { name: 'eth0', index: 0, mtu: 1500, address, prefixLength: family === 6 ? 64 : 24 };
        const b = createBackend(settings, uplink, address, new IpRunner({ netns: h.ns }), silentLogger);
        const { vtepMAC, mtu } = await b.prepare();
        expect(mtu).toBe(family === 6 ? 1430 : 1450);
        backends.set(`${h.index}/${family}`, b);
        macs.set(`${h.index}/${family}`, vtepMAC!);
      }
    }
    for (const h of hosts) {
      const env = parseAnySubnetEnv(subnetEnv(h.index, stack));
      for (const family of families) {
        const peers: Peer[] = hosts
          .filter((o) => o !== h)
          .map((o) => {
            const other = parseAnySubnetEnv(subnetEnv(o.index, stack));
            const subnet = family === 6 ? other.ipv6!.subnet : other.ipv4!.subnet;
            const publicIP = family === 6 ? Ipv6.parse(o.ip6)! : Ipv4.parse(o.ip4)!;
            return { key: subnet.toKey(), subnet, publicIP, backendType: 'vxlan', vtepMAC: macs.get(`${o.index}/${family}`)!, vni: 1 };
          });
        const own = family === 6 ? env.ipv6!.subnet : env.ipv4!.subnet;
        expect(await backends.get(`${h.index}/${family}`)!.reconcile(own, peers)).toMatchObject({ operations: 6, failures: 0 });
      }
    }
    for (const a of containers) {
      for (const b of containers) {
        if (a === b) continue;
        expect((await tb.ping6(a, b.ip6!, { count: 1, waitSec: 2 })).received, `${a.name} -> ${b.name} over IPv6`).toBe(1);
        if (stack === 'dual') expect((await tb.ping(a, b.ip, { count: 1, waitSec: 2 })).received, `${a.name} -> ${b.name} over IPv4`).toBe(1);
      }
    }
    // A long-running ping6 is reported per sequence number, like the IPv4 one.
    const [c1, c2] = containers as [Container, Container];
    const ping = tb.startPing(c1, c2.ip6!, 20);
    await waitFor(async () => (await tb.ping6(c1, c2.ip6!, { count: 1 })).received === 1, { what: 'a ping6 alongside' });
    await new Promise((r) => setTimeout(r, 300)); // the measurement window itself, not a wait for a condition
    const r = await ping.stop();
    expect(r.sent).toBeGreaterThanOrEqual(5);
    expect(r).toMatchObject({ lost: 0, lostSeqs: [] });
    expect(await tb.waitReachable(c2, c1.ip6!)).toBeGreaterThanOrEqual(0);
  });

  it('tears down every namespace and the work dir', async () => {
    const prefix = nsPrefix(tb.runId);
    expect((await listNetns()).filter((n) => n.startsWith(prefix)).length).toBe(1 + 3 + 3);
    await tb.teardown();
    expect((await listNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
    expect(existsSync(tb.workDir)).toBe(false);
  });
});
