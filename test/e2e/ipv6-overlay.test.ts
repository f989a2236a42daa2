// Issue 8's end-to-end proof: real agents on a dual-stack and on an IPv6-only underlay. Three
// hosts join, every container reaches every other over each family the network has (IPv4
// through flannel.1, IPv6 through flannel-v6.1), each host holds its own lease in Flannel's
// bytes, and a fourth host joins while existing containers keep talking on both stacks.
import { describe, expect, it } from 'vitest';
import { parseLeaseKey } from '../../src/api/lease.js';
import { ipIn } from '../../src/testbed/netns.js';
import type { Testbed, Container, Host, UnderlayStack } from '../../src/testbed/topology.js';
import { applyYaml, etcdKey, linkMac, subnetKeys, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';

const NETWORKS: Record<Exclude<UnderlayStack, 'ipv4'>, string> = {
  dual: '{cidr: 10.5.0.0/16, ipv6Cidr: "fd00:5::/48", backend: {type: vxlan}}',
  ipv6: '{ipv6Cidr: "fd00:5::/48", backend: {type: vxlan}}',
};

/** The addresses of a container to test, one per family the network has. */
function targets(c: Container, stack: UnderlayStack): string[] {
  return stack === 'dual' ? [c.ip, c.ip6!] : [c.ip6!];
}

describe.each<'dual' | 'ipv6'>(['dual', 'ipv6'])('weft overlay on a %s underlay', (stack) => {
  let tb: Testbed;

  async function join(index: number): Promise<{ host: Host; container: Container }> {
    const host = await tb.addHost(index);
    tb.startAgent(host);
    await tb.waitForAnySubnetEnv(host);
    return { host, container: await tb.addContainer(host) };
  }

  async function expectMesh(): Promise<void> {
    const containers = [...tb.hosts.values()].flatMap((h) => h.containers);
    for (const from of containers) {
      for (const to of containers) {
        if (from === to) continue;
        for (const addr of targets(to, stack)) await tb.waitReachable(from, addr, 15_000);
      }
    }
  }

  testbedFor((created) => (tb = created), {
    options: { stack },
    setup: async () => {
      await applyYaml(tb, 'network', `apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata: {name: default}\nspec: ${NETWORKS[stack]}\n`);
    },
  });

  it('connects every container on 3 hosts to every other over each stack, each host with its own lease', async () => {
    for (const i of [1, 2, 3]) await join(i);
    await expectMesh();

    const keys = await subnetKeys(tb, PREFIX);
    expect(keys).toHaveLength(3);
    const parsed = keys.map((k) => parseLeaseKey(k)!);
    expect(new Set(parsed.map((k) => k.ipv6!.toString())).size).toBe(3);
    if (stack === 'ipv6') for (const k of keys) expect(k).toMatch(/^0\.0\.0\.0-0&fd00:5:[0-9a-f:]+-64$/);
    else expect(new Set(parsed.map((k) => k.ipv4!.toString())).size).toBe(3);

    // Each host's lease in Flannel's bytes, naming the real MACs of its two (or one) devices.
    for (const h of tb.hosts.values()) {
      const env = tb.readAnySubnetEnv(h)!;
      const key = keys.find((k) => parseLeaseKey(k)!.ipv6!.equals(env.ipv6!.subnet))!;
      expect(key, `${h.name}'s subnet.env names a leased IPv6 subnet`).toBeDefined();
      const mac6 = await linkMac(h, 'flannel-v6.1');
      const v4 = stack === 'dual' ? `"PublicIP":"${h.ip4}"` : '"PublicIP":"0.0.0.0"';
      const data4 = stack === 'dual' ? `,"BackendData":{"VNI":1,"VtepMAC":"${await linkMac(h, 'flannel.1')}"}` : '';
      expect((await etcdKey(tb, `${PREFIX}/subnets/${key}`))?.value).toBe(
        `{${v4},"PublicIPv6":"${h.ip6}","BackendType":"vxlan"${data4},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"},"NodeName":"${h.name}"}`,
      );
      // An IPv6-only host has no IPv4 device at all.
      const links = JSON.parse((await ipIn(h.ns, ['-json', 'link', 'show'])).stdout) as { ifname: string }[];
      expect(links.map((l) => l.ifname).filter((n) => n.startsWith('flannel')).sort()).toEqual(stack === 'dual' ? ['flannel-v6.1', 'flannel.1'] : ['flannel-v6.1']);
    }
  });

  it('adds a fourth host while existing containers keep talking on every stack', async () => {
    const c1 = tb.host(1).containers[0]!;
    const c2 = tb.host(2).containers[0]!;
    const pings = targets(c2, stack).map((addr) => tb.startPing(c1, addr, 20));
    try {
      const { container } = await join(4);
      for (const h of [1, 2, 3]) {
        for (const addr of targets(container, stack)) await tb.waitReachable(tb.host(h).containers[0]!, addr, 10_000);
      }
    } finally {
      for (const p of pings) {
        const result = await p.stop();
        expect(result.lost).toBe(0);
        expect(result.received).toBeGreaterThan(5);
      }
    }
    await expectMesh();
    expect(await subnetKeys(tb, PREFIX)).toHaveLength(4);
  });
});
