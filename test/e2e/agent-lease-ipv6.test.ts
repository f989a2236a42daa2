// Agents on dual-stack and IPv6-only Networks, as real processes in host namespaces: one key
// per host holding its subnets, flannel's lease value and subnet.env, restarts keeping the
// key, and (dual-stack) the IPv4 overlay working as before. Container traffic over IPv6 is
// test/e2e/ipv6-overlay's; here the IPv6 device's MAC shows up as BackendV6Data.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLeaseKey } from '../../src/api/lease.js';
import { ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { applyYaml, etcdKey, expectFullMesh, findLogs, linkMac, subnetKeys, testbedFor, waitForRun } from './helpers.js';

const PREFIX = '/coreos.com/network';
let tb: Testbed;

testbedFor((created) => (tb = created), {
  setup: () =>
    applyYaml(
      tb,
      'networks',
      `apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: default}
spec: {cidr: 10.5.0.0/16, ipv6Cidr: "fd00:5::/48", backend: {type: vxlan}}
---
apiVersion: weft.io/v1alpha1
kind: Network
metadata: {name: six}
spec: {ipv6Cidr: "fd00:6::/48", backend: {type: vxlan, vni: 6}}
`,
    ),
});

/** A host with a global IPv6 address beside its IPv4 one on eth0 (no DAD: usable at once). */
async function addDualHost(index: number): Promise<Host & { ip6: string }> {
  const host = await tb.addHost(index);
  const ip6 = `2001:db8::${index}`;
  await ipIn(host.ns, ['addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
  return Object.assign(host, { ip6 });
}

function readEnv(host: Host): string | undefined {
  try {
    return readFileSync(host.subnetFile, 'utf8');
  } catch {
    return undefined;
  }
}

async function waitEnv(host: Host): Promise<string> {
  return poll(() => readEnv(host), { timeoutMs: 20_000, intervalMs: 100, what: `${host.subnetFile}` });
}

async function keysOf(prefix: string): Promise<string[]> {
  return subnetKeys(tb, prefix);
}

describe('weft agent on a dual-stack network', () => {
  it('holds one key with an IPv4 and an IPv6 subnet, and writes both to subnet.env', async () => {
    const h1 = await addDualHost(1);
    const h2 = await addDualHost(2);
    tb.startAgent(h1);
    tb.startAgent(h2);
    const env1 = await waitEnv(h1);
    await waitEnv(h2);
    const keys = await keysOf(PREFIX);
    expect(keys).toHaveLength(2);
    const k1 = keys.find((k) => env1.includes(`FLANNEL_SUBNET=${parseLeaseKey(k)!.ipv4!.gateway}/24`))!;
    const subnets = parseLeaseKey(k1)!;
    expect(subnets.ipv6!.prefix).toBe(64);
    // flannel's lines and order; MTU the smaller of IPv4 vxlan (1500 - 50) and IPv6 vxlan (1500 - 70).
    expect(env1).toBe(
      `FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=${subnets.ipv4!.gateway}/24\n` +
        `FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=${subnets.ipv6!.gateway}/64\n` +
        'FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n',
    );
    const kv = await etcdKey(tb, `${PREFIX}/subnets/${k1}`);
    const mac = await linkMac(h1, 'flannel.1');
    const mac6 = await linkMac(h1, 'flannel-v6.1');
    expect(kv?.value).toBe(
      `{"PublicIP":"${h1.ip}","PublicIPv6":"${h1.ip6}","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${mac6}"},"NodeName":"h1"}`,
    );
    expect(kv?.lease).not.toBe(0);
    const [a, b] = keys.map((k) => parseLeaseKey(k)!);
    expect(a!.ipv4!.equals(b!.ipv4!) || a!.ipv6!.equals(b!.ipv6!)).toBe(false);
  });

  it('keeps the IPv4 overlay working, and keeps its key across a restart', async () => {
    const h1 = tb.host(1);
    const h2 = tb.host(2);
    await tb.addContainer(h1);
    await tb.addContainer(h2);
    await expectFullMesh(tb);
    const before = await keysOf(PREFIX);
    await tb.stopAgent(h1);
    tb.startAgent(h1);
    const log = await waitForRun(tb, h1, 1, 'lease acquired');
    expect(findLogs(log, 'lease acquired')).toMatchObject([{ how: 'reused lease (matched by node-name)' }]);
    expect(await keysOf(PREFIX)).toEqual(before);
  });
});

describe('weft agent on an IPv6-only network', () => {
  it('holds an IPv6-only key per host (never one shared through PublicIP 0.0.0.0) and writes only IPv6 lines', async () => {
    const h3 = await addDualHost(3);
    const h4 = await addDualHost(4);
    const six = `${PREFIX}/six`;
    tb.startAgent(h3, ['--network', 'six'], { iface: h3.ip6 });
    tb.startAgent(h4, ['--network', 'six'], { iface: h4.ip6 });
    const env3 = await waitEnv(h3);
    await waitEnv(h4);
    const keys = await keysOf(six);
    expect(keys).toHaveLength(2);
    for (const k of keys) expect(k).toMatch(/^0\.0\.0\.0-0&fd00:6:[0-9a-f:]+-64$/);
    const k3 = keys.find((k) => env3.includes(`FLANNEL_IPV6_SUBNET=${parseLeaseKey(k)!.ipv6!.gateway}/64`))!;
    expect(env3).toBe(`FLANNEL_IPV6_NETWORK=fd00:6::/48\nFLANNEL_IPV6_SUBNET=${parseLeaseKey(k3)!.ipv6!.gateway}/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n`);
    const mac6 = await linkMac(h3, 'flannel-v6.6');
    expect((await etcdKey(tb, `${six}/subnets/${k3}`))?.value).toBe(
      `{"PublicIP":"0.0.0.0","PublicIPv6":"${h3.ip6}","BackendType":"vxlan","BackendV6Data":{"VNI":6,"VtepMAC":"${mac6}"},"NodeName":"h3"}`,
    );
    // Restarts: each host finds its own key again.
    await tb.stopAgent(h3);
    await tb.stopAgent(h4);
    tb.startAgent(h4, ['--network', 'six'], { iface: h4.ip6 });
    tb.startAgent(h3, ['--network', 'six'], { iface: h3.ip6 });
    await waitForRun(tb, h3, 1, 'lease acquired');
    await waitForRun(tb, h4, 1, 'lease acquired');
    expect(await keysOf(six)).toEqual(keys);
    expect(readEnv(h3)).toBe(env3);
  });
});
