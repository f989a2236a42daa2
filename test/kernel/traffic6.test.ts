// Three hosts on one IPv6 (or dual-stack) underlay segment, each with a "container" behind a
// bridge and the vxlan backends of its families programmed directly with the other hosts as
// peers: containers reach each other across hosts over IPv6 (and IPv4), full-size packets
// cross, and a backend restart (a new instance adopting the device) loses nothing.
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IpAddr } from '../../src/alloc/cidr.js';
import { createBackend } from '../../src/dataplane/index.js';
import type { Backend, Peer, Uplink } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';
import { parsePingStream, parsePingSummary } from '../../src/testbed/parse.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';
import { cidr, enableIpv6, ip, ip6, net6, VXLAN, VXLAN6, type Stack } from './fixture.js';

interface Node {
  n: number;
  host: TestNetns;
  container: TestNetns;
  v4?: { backend: Backend; mac: string };
  v6?: { backend: Backend; mac: string };
}

const HOSTS = [1, 2, 3];

async function ping(from: TestNetns, to: string, extra: string[] = []) {
  const family = to.includes(':') ? '-6' : '-4';
  const r = await execa('ip', ['netns', 'exec', from.name, 'ping', family, '-n', '-q', '-c', '1', '-W', '2', ...extra, to], { reject: false });
  return parsePingSummary(String(r.stdout), String(r.stderr));
}

function peersOf(nodes: Node[], self: Node, family: 4 | 6): Peer[] {
  return nodes
    .filter((o) => o !== self)
    .map((o) =>
      family === 6
        ? { key: `fd00:5:0:${o.n}::-64`, subnet: net6(`fd00:5:0:${o.n}::/64`), publicIP: ip6(`fd00:1::${o.n}`), backendType: 'vxlan', vtepMAC: o.v6!.mac, vni: 1 }
        : { key: `10.5.${o.n}.0-24`, subnet: cidr(`10.5.${o.n}.0/24`), publicIP: ip(`192.0.2.${o.n}`), backendType: 'vxlan', vtepMAC: o.v4!.mac, vni: 1 },
    );
}

describe.each<Stack>(['ipv6', 'dual'])('vxlan between three hosts on an %s underlay (kernel)', (stack) => {
  const spaces: TestNetns[] = [];
  const nodes: Node[] = [];
  const families: (4 | 6)[] = stack === 'dual' ? [4, 6] : [6];
  const make = (node: Node, family: 4 | 6): Backend => {
    const address: IpAddr = family === 6 ? ip6(`fd00:1::${node.n}`) : ip(`192.0.2.${node.n}`);
    const uplink: Uplink = { name: 'eth0', index: 0, mtu: 1500, address, prefixLength: family === 6 ? 64 : 24 };
    return createBackend(family === 6 ? VXLAN6 : VXLAN, uplink, address, node.host.runner, silentLogger);
  };
  const converge = async (node: Node, family: 4 | 6) => {
    const b = family === 6 ? node.v6!.backend : node.v4!.backend;
    const own = family === 6 ? net6(`fd00:5:0:${node.n}::/64`) : cidr(`10.5.${node.n}.0/24`);
    return b.reconcile(own, peersOf(nodes, node, family));
  };

  beforeAll(async () => {
    const ul = await createTestNetns(`${stack}ul`);
    spaces.push(ul);
    await enableIpv6(ul.name);
    await ul.ip(['link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0']);
    await ul.ip(['link', 'set', 'br0', 'up']);
    for (const n of HOSTS) {
      const host = await createTestNetns(`${stack}h${n}`);
      spaces.push(host);
      const container = await createTestNetns(`${stack}c${n}`);
      spaces.push(container);
      for (const ns of [host, container]) await enableIpv6(ns.name);
      await execa('ip', ['netns', 'exec', host.name, 'tee', '/proc/sys/net/ipv4/ip_forward'], { input: '1' });
      await ul.ip(['link', 'add', `v-h${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.name]);
      await ul.ip(['link', 'set', `v-h${n}`, 'master', 'br0', 'up']);
      await host.ip(['addr', 'add', `fd00:1::${n}/64`, 'dev', 'eth0', 'nodad']);
      if (stack === 'dual') await host.ip(['addr', 'add', `192.0.2.${n}/24`, 'dev', 'eth0']);
      await host.ip(['link', 'set', 'eth0', 'up']);
      // The container's MTU is the smallest overlay MTU: 1430 over an IPv6 underlay.
      await host.ip(['link', 'add', 'cni0', 'mtu', '1430', 'type', 'bridge']);
      await host.ip(['addr', 'add', `fd00:5:0:${n}::1/64`, 'dev', 'cni0', 'nodad']);
      if (stack === 'dual') await host.ip(['addr', 'add', `10.5.${n}.1/24`, 'dev', 'cni0']);
      await host.ip(['link', 'set', 'cni0', 'up']);
      await host.ip(['link', 'add', 'v-c', 'mtu', '1430', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1430', 'netns', container.name]);
      await host.ip(['link', 'set', 'v-c', 'master', 'cni0', 'up']);
      await container.ip(['addr', 'add', `fd00:5:0:${n}::2/64`, 'dev', 'eth0', 'nodad']);
      if (stack === 'dual') await container.ip(['addr', 'add', `10.5.${n}.2/24`, 'dev', 'eth0']);
      await container.ip(['link', 'set', 'eth0', 'up']);
      await container.ip(['-6', 'route', 'add', 'default', 'via', `fd00:5:0:${n}::1`]);
      if (stack === 'dual') await container.ip(['-4', 'route', 'add', 'default', 'via', `10.5.${n}.1`]);
      nodes.push({ n, host, container });
    }
    for (const node of nodes) {
      for (const family of families) {
        const backend = make(node, family);
        const { vtepMAC } = await backend.prepare();
        node[family === 6 ? 'v6' : 'v4'] = { backend, mac: vtepMAC! };
      }
    }
    for (const node of nodes) for (const family of families) expect(await converge(node, family)).toMatchObject({ failures: 0 });
  });

  afterAll(async () => {
    for (const ns of spaces.splice(0).reverse()) await ns.delete();
  });

  it('connects every container to every other over IPv6, and over IPv4 too on a dual-stack underlay', async () => {
    for (const a of nodes) {
      for (const b of nodes) {
        if (a === b) continue;
        expect((await ping(a.container, `fd00:5:0:${b.n}::2`)).received, `c${a.n} -> c${b.n} (IPv6)`).toBe(1);
        if (stack === 'dual') expect((await ping(a.container, `10.5.${b.n}.2`)).received, `c${a.n} -> c${b.n} (IPv4)`).toBe(1);
      }
    }
    // Host to remote container, from the flannel-v6.1 address.
    expect((await ping(nodes[0]!.host, 'fd00:5:0:3::2')).received).toBe(1);
  });

  it('carries a full-size IPv6 packet: container MTU 1430 = 1500 - 70, the largest the kernel allows the device', async () => {
    const [a, b] = nodes as [Node, Node];
    const full = await ping(a.container, `fd00:5:0:${b.n}::2`, ['-M', 'do', '-s', String(1430 - 48)]);
    expect(full.received).toBe(1);
  });

  it('restarts a backend (a new instance adopts the device) without losing a packet', async () => {
    const [a, b] = nodes as [Node, Node];
    const proc = spawn('ip', ['netns', 'exec', a.container.name, 'ping', '-6', '-n', '-O', '-i', '0.02', '-W', '1', `fd00:5:0:${b.n}::2`], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
    try {
      await waitFor(() => /icmp_seq=5 /.test(out), { what: 'the ping to run' });
      for (const node of [a, b]) {
        const before = node.v6!.mac;
        const backend = make(node, 6);
        const { vtepMAC } = await backend.prepare();
        expect(vtepMAC).toBe(before);
        node.v6 = { backend, mac: vtepMAC! };
        // Nothing to change: the restarted backend finds the kernel as it wants it.
        expect(await converge(node, 6)).toMatchObject({ operations: 0, failures: 0 });
      }
      const seen = (out.match(/icmp_seq=/g) ?? []).length;
      await waitFor(() => (out.match(/icmp_seq=/g) ?? []).length >= seen + 10, { what: 'more replies after the restarts' });
    } finally {
      proc.kill('SIGINT');
      await exited;
    }
    const r = parsePingStream(out);
    expect(r.sent).toBeGreaterThan(15);
    expect(r.lostSeqs).toEqual([]);
  });

  it('stops carrying traffic to a peer once it is removed, and carries it again when it is back', async () => {
    const [a, b, c] = nodes as [Node, Node, Node];
    const own = net6(`fd00:5:0:${a.n}::/64`);
    const withoutB = peersOf(nodes, a, 6).filter((p) => !p.key.startsWith(`fd00:5:0:${b.n}:`));
    expect(await a.v6!.backend.reconcile(own, withoutB)).toMatchObject({ operations: 3, failures: 0 });
    expect((await ping(a.container, `fd00:5:0:${b.n}::2`)).received).toBe(0);
    expect((await ping(a.container, `fd00:5:0:${c.n}::2`)).received).toBe(1);
    expect(await converge(a, 6)).toMatchObject({ operations: 3, failures: 0 });
    expect((await ping(a.container, `fd00:5:0:${b.n}::2`)).received).toBe(1);
  });
});
