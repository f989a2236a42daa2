// The agent reads its host (links, addresses, default routes, `ip route get` for
// --iface-can-reach) over rtnetlink from its own process; the `ip` processes it used before
// stay as the fallback. Here both are read in a namespace with varied state and must agree:
// the netlink read from a process started inside the namespace (a socket opens in its
// caller's namespace), the `ip` read from this process through `ip -n`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { readHostWithIp, type HostSnapshot } from '../../src/dataplane/host-snapshot.js';
import { setSysctls } from '../../src/testbed/netns.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';
import { waitFor } from '../helpers/wait.js';

const MODULE = fileURLToPath(new URL('../../dist/dataplane/host-snapshot.js', import.meta.url));
const IPCMD = fileURLToPath(new URL('../../dist/dataplane/ipcmd.js', import.meta.url));

/** A JSON.stringify replacer writing addresses as text, so that snapshots from two processes compare. */
const addressText = (_k: string, v: unknown): unknown => (v !== null && typeof v === 'object' && 'family' in v && 'value' in v ? String(v) : v);

/** In the namespace: readHostSnapshot for each --iface-can-reach target, and how many `ip` processes it started. */
const READER = `
const { readHostSnapshot } = await import(process.argv[1]);
const { hostRunner } = await import(process.argv[2]);
const out = [];
for (const target of JSON.parse(process.argv[3])) out.push(await readHostSnapshot(target ?? undefined, { ipv6: true }));
process.stdout.write(JSON.stringify({ snapshots: out, ipProcesses: hostRunner.runs }, ${addressText.toString()}));
`;

function plain(s: HostSnapshot): unknown {
  return JSON.parse(JSON.stringify(s, addressText));
}

async function readInside(ns: TestNetns, targets: (string | null)[], env: Record<string, string> = {}): Promise<{ snapshots: unknown[]; ipProcesses: number }> {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--input-type=module', '-e', READER, MODULE, IPCMD, JSON.stringify(targets)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, WEFT_KERNEL_CHANNEL: '', ...env },
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, err).toBe(0);
  return JSON.parse(out) as { snapshots: unknown[]; ipProcesses: number };
}

const spaces: TestNetns[] = [];
afterEach(async () => {
  for (const ns of spaces.splice(0)) await ns.delete();
});

/**
 * eth0 (up): two IPv4 addresses and a global IPv6 one; eth1 (up): IPv6 only, one address
 * tentative for ever (its peer is down: no carrier, so DAD never ends) and one whose DAD
 * failed (the peer holds it); down0 (down): an IPv4 and a global IPv6 address. Routes to a
 * few networks, and a default route in another table (not the main one: no default route).
 */
async function variedHost(): Promise<TestNetns> {
  const ns = await createTestNetns('hostsnap');
  spaces.push(ns);
  await setSysctls(ns.name, {
    'net.ipv6.conf.all.disable_ipv6': '0',
    'net.ipv6.conf.default.disable_ipv6': '0',
    'net.ipv6.conf.all.accept_dad': '1',
    'net.ipv6.conf.default.accept_dad': '1',
  });
  const ip = (args: string) => ns.ip(args.split(' '));
  await ip('link add eth0 type veth peer name eth0p');
  await ip('link add eth1 type veth peer name eth1p');
  await ip('link add down0 type veth peer name down0p');
  await ip('link add lonely type veth peer name lonelyp');
  await ip('addr add 192.0.2.1/24 dev eth0');
  await ip('addr add 192.0.2.9/24 dev eth0');
  await ip('addr add fd00:1::1/64 dev eth0 nodad');
  await ip('addr add 198.51.100.1/24 dev down0');
  await ip('addr add fd00:3::1/64 dev down0 nodad');
  // The duplicate: held (without DAD) by eth1's peer, then asked for by eth1 with DAD.
  await ip('addr add fd00:2::5/64 dev eth1p nodad');
  for (const l of ['eth0', 'eth0p', 'eth1', 'eth1p']) await ip(`link set ${l} up`);
  await ip('addr add fd00:2::1/64 dev eth1 nodad');
  await ip('addr add fd00:2::5/64 dev eth1');
  // lonely is up, its peer is not: its address stays tentative.
  await ip('link set lonely up');
  await ip('addr add fd00:4::1/64 dev lonely');
  await ip('link set lonely mtu 1400');
  await waitFor(
    async () => {
      const addrs = await ns.ipJson<{ ifname: string; addr_info: { local: string; dadfailed?: boolean }[] }[]>(['addr', 'show', 'dev', 'eth1']);
      return addrs[0]?.addr_info.some((a) => a.local === 'fd00:2::5' && a.dadfailed);
    },
    { what: 'fd00:2::5 on eth1 to fail its duplicate address detection', timeoutMs: 15_000 },
  );
  await ip('route add 10.0.0.0/8 via 192.0.2.254 dev eth0');
  await ip('route add fd00:9::/48 via fd00:2::fe dev eth1');
  await ip('route add default via 192.0.2.253 dev eth0 table 100');
  return ns;
}

describe('the host snapshot', () => {
  it('over netlink equals the `ip` processes\' one: links up and down, tentative and failed IPv6 addresses, default routes, --iface-can-reach', async () => {
    const ns = await variedHost();
    const targets = ['10.1.2.3', 'fd00:9::7', '203.0.113.9', 'fd00:7::1', null];
    const check = async (what: string) => {
      const inside = await readInside(ns, targets);
      expect(inside.ipProcesses, 'no `ip` process: read over netlink').toBe(0);
      for (const [i, target] of targets.entries()) {
        const viaIp = plain(await readHostWithIp(ns.runner, target ?? undefined, { ipv6: true }));
        expect(inside.snapshots[i], `${what}, --iface-can-reach ${target}`).toEqual(viaIp);
      }
      return inside.snapshots as HostSnapshot[];
    };

    // No default route in the main table: none read, and the unroutable targets answer nothing.
    const [reach4, reach6, nowhere4, nowhere6] = await check('without a default route');
    expect(reach4).toMatchObject({ canReach: { dev: 'eth0', src: '192.0.2.1' } });
    expect(reach6).toMatchObject({ canReach: { dev: 'eth1', src: 'fd00:2::1' } });
    expect(nowhere4!.canReach).toBeUndefined();
    expect(nowhere6!.canReach).toBeUndefined();
    expect(reach4!.defaultRouteDev).toBeUndefined();
    expect(reach4!.defaultRouteDev6).toBeUndefined();
    const links = Object.fromEntries(reach4!.links.map((l) => [l.name, l]));
    expect(links.down0).toMatchObject({ up: false, addresses: [{ ip: '198.51.100.1', prefixLength: 24 }], addresses6: [{ ip: 'fd00:3::1', prefixLength: 64 }] });
    expect(links.eth0).toMatchObject({ up: true, addresses: [{ ip: '192.0.2.1' }, { ip: '192.0.2.9' }], addresses6: [{ ip: 'fd00:1::1' }] });
    // The failed duplicate is left out; link-local addresses too.
    expect(links.eth1!.addresses6).toEqual([{ ip: 'fd00:2::1', prefixLength: 64 }]);
    expect(links.lonely).toMatchObject({ mtu: 1400, addresses6: [{ ip: 'fd00:4::1', prefixLength: 64 }] });

    // Default routes of both families, on different links.
    await ns.ip(['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'eth0']);
    await ns.ip(['-6', 'route', 'add', 'default', 'via', 'fd00:2::fe', 'dev', 'eth1']);
    const [withDefaults, , routedNow] = await check('with default routes');
    expect(withDefaults).toMatchObject({ defaultRouteDev: 'eth0', defaultRouteDev6: 'eth1' });
    expect(routedNow).toMatchObject({ canReach: { dev: 'eth0', src: '192.0.2.1' } });
  });

  it('is read with `ip` processes when the netlink binding is unavailable, and is the same', async () => {
    const ns = await variedHost();
    await ns.ip(['route', 'add', 'default', 'via', '192.0.2.254', 'dev', 'eth0']);
    expect(existsSync(MODULE), 'dist/ is built').toBe(true);
    const netlink = await readInside(ns, ['10.1.2.3']);
    const fallback = await readInside(ns, ['10.1.2.3'], { WEFT_KERNEL_CHANNEL: 'iproute2' });
    expect(netlink.ipProcesses).toBe(0);
    expect(fallback.ipProcesses).toBe(4); // addr, route, -6 route, route get
    expect(fallback.snapshots).toEqual(netlink.snapshots);
    expect(fallback.snapshots[0]).toMatchObject({ defaultRouteDev: 'eth0', canReach: { dev: 'eth0' } });
  });
});
