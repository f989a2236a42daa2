// The IPv6 vxlan backend (and IPv6 host-gw / directRouting) against a real kernel, inside a
// namespace each test creates, with hand-made IPv6 peers.
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import type { BackendSettings } from '../../src/dataplane/types.js';
import {
  expectedVx,
  expectedVx6,
  ip,
  ip6,
  net6,
  OWN,
  OWN6,
  VXLAN,
  VXLAN6,
  vxPeer,
  vxPeer6,
  vxState,
  vxState6,
  useHosts,
  type Host,
} from './fixture.js';

const DEV = 'flannel-v6.1';
const host = useHosts('ipv6');

const globalV6 = async (h: Host, dev = DEV) =>
  (await h.link(dev))!.addr_info!.filter((a) => a.family === 'inet6' && !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`);

describe('IPv6 vxlan backend (kernel)', () => {
  it('creates flannel-v6.1 as flanneld does, 70 bytes under the uplink MTU, and publishes its real MAC', async () => {
    const h = await host('v6dev');
    const b = h.backend6();
    const prepared = await b.prepare();
    const link = (await h.link(DEV))!;
    expect(prepared).toEqual({ vtepMAC: link.address, mtu: 1430 });
    expect(parseInt(link.address.slice(0, 2), 16) & 3).toBe(2); // locally administered unicast
    expect(link.mtu).toBe(1430);
    expect(link.flags).toContain('UP');
    expect(link.linkinfo?.info_kind).toBe('vxlan');
    expect(link.linkinfo?.info_data).toMatchObject({ id: 1, local6: 'fd00:1::1', link: 'eth0', port: 8472, learning: false });

    await b.reconcile(OWN6, []);
    expect(await globalV6(h)).toEqual(['fd00:5:0:1::/128']);
    const own = (await h.link(DEV))!.addr_info!.find((a) => a.local === 'fd00:5:0:1::') as unknown as Record<string, unknown>;
    expect(own.nodad).toBe(true);
    expect(own.tentative).toBeUndefined(); // usable at once
  });

  it('converges peers, then does only the work each change needs', async () => {
    const h = await host('v6conv');
    const b = h.backend6();
    await b.prepare();
    const peers = [vxPeer6(2), vxPeer6(3), vxPeer6(4)];

    const first = await b.reconcile(OWN6, peers);
    expect([first.operations, first.failures]).toEqual([9, 0]);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 3, 4]));

    const runs = h.ns.runner.runs;
    expect((await b.reconcile(OWN6, peers)).operations).toBe(0);
    expect(h.ns.runner.runs).toBe(runs);

    const removed = await b.reconcile(OWN6, [vxPeer6(2), vxPeer6(4)]);
    expect([removed.operations, removed.failures]).toEqual([3, 0]);
    expect(h.ns.runner.runs - runs).toBe(3);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 4]));

    const changed = await b.reconcile(OWN6, [vxPeer6(2), vxPeer6(4, { vtepMAC: '02:00:00:00:aa:04' })]);
    expect([changed.operations, changed.failures]).toEqual([3, 0]);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 4], { 4: '02:00:00:00:aa:04' }));

    const moved = await b.reconcile(OWN6, [vxPeer6(2, { publicIP: ip6('fd00:1::22') }), vxPeer6(4, { vtepMAC: '02:00:00:00:aa:04' })]);
    expect([moved.operations, moved.failures]).toEqual([1, 0]);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 4], { 4: '02:00:00:00:aa:04' }, { 2: 'fd00:1::22' }));

    // Everything read back equals what was written: a resync finds nothing to do.
    expect(await b.reconcile(OWN6, [vxPeer6(2, { publicIP: ip6('fd00:1::22') }), vxPeer6(4, { vtepMAC: '02:00:00:00:aa:04' })], { resync: true })).toMatchObject({
      operations: 0,
      failures: 0,
    });
  });

  it('repairs entries deleted by hand on resync', async () => {
    const h = await host('v6drift');
    const b = h.backend6();
    await b.prepare();
    const peers = [vxPeer6(2), vxPeer6(3), vxPeer6(4)];
    await b.reconcile(OWN6, peers);
    await h.ns.ip(['-6', 'route', 'del', 'fd00:5:0:3::/64', 'dev', DEV]);
    await h.ns.ip(['-6', 'neigh', 'del', 'fd00:5:0:4::', 'dev', DEV]);
    await h.ns.runner.mustRun('bridge', ['fdb', 'del', '02:00:00:00:06:02', 'dev', DEV, 'dst', 'fd00:1::2', 'self']);
    await h.ns.ip(['-6', 'addr', 'del', 'fd00:5:0:1::/128', 'dev', DEV]);

    expect((await b.reconcile(OWN6, peers)).operations).toBe(0);
    const repaired = await b.reconcile(OWN6, peers, { resync: true });
    expect([repaired.operations, repaired.failures]).toEqual([3, 0]);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 3, 4]));
    expect(await globalV6(h)).toEqual(['fd00:5:0:1::/128']);
  });

  it('recreates a deleted device on resync, restores everything and reports the new MAC', async () => {
    const h = await host('v6gone');
    const b = h.backend6();
    const { vtepMAC } = await b.prepare();
    const peers = [vxPeer6(2), vxPeer6(3)];
    await b.reconcile(OWN6, peers);
    await h.ns.ip(['link', 'del', DEV]);

    const r = await b.reconcile(OWN6, peers, { resync: true });
    const link = (await h.link(DEV))!;
    expect([r.operations, r.failures]).toEqual([6, 0]);
    expect(r.vtepMAC).toBe(link.address);
    expect(r.vtepMAC).not.toBe(vtepMAC);
    expect(await globalV6(h)).toEqual(['fd00:5:0:1::/128']);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 3]));
  });

  it('at startup adopts the device, keeps valid entries and removes only stale ones', async () => {
    const h = await host('v6start');
    const before = h.backend6();
    const { vtepMAC } = await before.prepare();
    await before.reconcile(OWN6, [vxPeer6(2), vxPeer6(3), vxPeer6(4)]);
    const linkLocal = (await h.link(DEV))!.addr_info!.filter((a) => a.local.startsWith('fe80:')).map((a) => a.local);
    expect(linkLocal).toHaveLength(1);
    // Left behind while the agent was down: a vanished peer's three entries, a host route, an
    // extra address, weft's uplink route for a vanished direct peer, and the operator's own
    // IPv6 routes on the uplink (one outside the network with weft's protocol: not ours to judge).
    await h.ns.ip(['-6', 'neigh', 'replace', 'fd00:5:0:9::', 'lladdr', '02:00:00:00:06:09', 'dev', DEV, 'nud', 'permanent']);
    await h.ns.runner.mustRun('bridge', ['fdb', 'append', '02:00:00:00:06:09', 'dev', DEV, 'dst', 'fd00:1::9', 'self', 'permanent']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5:0:9::/64', 'via', 'fd00:5:0:9::', 'dev', DEV, 'onlink']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5::5/128', 'via', 'fd00:5:0:2::', 'dev', DEV, 'onlink', 'proto', 'static']);
    await h.ns.ip(['-6', 'addr', 'add', 'fd00:5:0:77::1/64', 'dev', DEV, 'nodad']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5:0:8::/64', 'via', 'fd00:1::8', 'dev', 'eth0', 'proto', '119']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5:0:60::/64', 'via', 'fd00:1::60', 'dev', 'eth0', 'proto', 'static']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:99::/64', 'via', 'fd00:1::60', 'dev', 'eth0', 'proto', '119']);

    const after = h.backend6(); // the agent restarted
    expect((await after.prepare()).vtepMAC).toBe(vtepMAC);
    const runsBefore = h.ns.runner.runs;
    const r = await after.reconcile(OWN6, [vxPeer6(2), vxPeer6(3), vxPeer6(5)]);
    // 4 and 9 removed (3 each), the host route and weft's uplink route removed, 5 added.
    expect([r.operations, r.failures]).toEqual([11, 0]);
    expect(r.vtepMAC).toBe(vtepMAC);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 3, 5]));
    expect(await h.routes('eth0', 6)).toEqual(['fd00:5:0:60::/64 via fd00:1::60 proto 4', 'fd00:99::/64 via fd00:1::60 proto 119']);
    expect(await globalV6(h)).toEqual(['fd00:5:0:1::/128']);
    expect((await h.link(DEV))!.addr_info!.filter((a) => a.local.startsWith('fe80:')).map((a) => a.local)).toEqual(linkLocal);
    expect(h.ns.runner.runs - runsBefore).toBeLessThanOrEqual(9);
  });

  it('adopts flanneld\'s device with learning on in place (learning off, MAC kept) and turns router advertisements off, as flanneld', async () => {
    const h = await host('v6learn', 'dual');
    const acceptRa = async () => String((await execa('ip', ['netns', 'exec', h.ns.name, 'cat', `/proc/sys/net/ipv6/conf/${DEV}/accept_ra`])).stdout).trim();
    await h.ns.ip(['link', 'add', DEV, 'type', 'vxlan', 'id', '1', 'local', 'fd00:1::1', 'dev', 'eth0', 'dstport', '8472', 'learning']);
    const before = (await h.link(DEV))!;
    expect([before.linkinfo?.info_data?.learning, await acceptRa()]).toEqual([true, '1']);
    const { vtepMAC } = await h.backend6().prepare();
    const after = (await h.link(DEV))!;
    expect([vtepMAC, after.address, after.linkinfo?.info_data?.learning]).toEqual([before.address, before.address, false]);
    expect(await acceptRa()).toBe('0');
    // A device weft creates gets the same.
    await h.ns.ip(['link', 'del', DEV]);
    await h.backend6().prepare();
    expect(await acceptRa()).toBe('0');
  });

  it('replaces an incompatible device (other VNI, an IPv4 or other IPv6 local address, other port)', async () => {
    const h = await host('v6incompat', 'dual');
    const variants: string[][] = [
      ['id', '7', 'local', 'fd00:1::1', 'dev', 'eth0', 'nolearning', 'dstport', '8472'],
      ['id', '1', 'local', 'fd00:1::99', 'dev', 'eth0', 'nolearning', 'dstport', '8472'],
      ['id', '1', 'local', '192.0.2.1', 'dev', 'eth0', 'nolearning', 'dstport', '8472'],
      ['id', '1', 'local', 'fd00:1::1', 'dev', 'eth0', 'nolearning', 'dstport', '4789'],
    ];
    for (const v of variants) {
      await h.ns.ip(['link', 'add', DEV, 'type', 'vxlan', ...v]);
      const old = (await h.link(DEV))!.address;
      const { vtepMAC } = await h.backend6().prepare();
      const link = (await h.link(DEV))!;
      expect(vtepMAC).toBe(link.address);
      expect(vtepMAC).not.toBe(old);
      expect(link.linkinfo?.info_data).toMatchObject({ id: 1, local6: 'fd00:1::1', link: 'eth0', port: 8472, learning: false });
      await h.ns.ip(['link', 'del', DEV]);
    }
    expect(h.logs.filter((l) => l.includes('replacing incompatible vxlan device'))).toHaveLength(variants.length);
  });

  it('honours the configured port, and the configured MTU as the underlay MTU (70 bytes less on the IPv6 device)', async () => {
    const h = await host('v6port');
    const { mtu } = await h.backend6({ ...VXLAN6, port: 4789, mtu: 1400 }).prepare();
    const link = (await h.link(DEV))!;
    expect([mtu, link.mtu, link.linkinfo?.info_data?.port]).toEqual([1330, 1330, 4789]);
    await h.ns.ip(['link', 'del', DEV]);

    // An underlay MTU above what this uplink carries: the kernel would refuse the device, so
    // the uplink's is used, and the log says so.
    expect((await h.backend6({ ...VXLAN6, mtu: 9001 }).prepare()).mtu).toBe(1430);
    expect((await h.link(DEV))!.mtu).toBe(1430);
    expect(h.logs.filter((l) => l.includes("above the IPv6 uplink's") && l.includes('configured=9001 uplink=1500'))).toHaveLength(1);
  });

  it('never lets a hostile lease value reach the kernel, and programs the valid peers beside it', async () => {
    const h = await host('v6hostile');
    await h.ns.ip(['-6', 'route', 'add', 'default', 'via', 'fd00:1::254', 'dev', 'eth0']);
    const b = h.backend6({ ...VXLAN6, network: undefined });
    await b.prepare();
    const r = await b.reconcile(OWN6, [
      vxPeer6(2),
      vxPeer6(3, { vtepMAC: '02:00:00:00:06:03 dev eth0\nroute del default' }),
      vxPeer6(4, { vtepMAC: '02:00:00:00:06:04\n' }),
      vxPeer6(5, { publicIP: ip6('ff02::1') }),
      vxPeer6(6, { key: 'fe80::-64', subnet: net6('fe80::/64') }),
      vxPeer6(7, { publicIP: ip6('fe80::7') }),
      vxPeer6(8),
    ]);
    expect([r.operations, r.failures]).toEqual([6, 0]);
    expect(await vxState6(h)).toEqual(expectedVx6([2, 8]));
    expect(await h.routes('eth0', 6)).toEqual(['default via fd00:1::254 proto 3']);
    const skipped = h.logs.filter((l) => l.includes('not routing to peer'));
    expect(skipped).toHaveLength(5);
    for (const key of ['fd00:5:0:3::-64', 'fd00:5:0:4::-64', 'fd00:5:0:5::-64', 'fe80::-64', 'fd00:5:0:7::-64']) {
      expect(skipped.some((l) => l.includes(key))).toBe(true);
    }
  });
});

describe('IPv6 host-gw and directRouting (kernel)', () => {
  const HOST_GW6: BackendSettings = { ...VXLAN6, type: 'host-gw' };
  const gwPeer6 = (n: number, publicIP = `fd00:1::${n}`) => vxPeer6(n, { backendType: 'host-gw', vtepMAC: undefined, publicIP: ip6(publicIP) });

  it('host-gw routes each peer subnet via its public IPv6 address, and never touches the operator routes', async () => {
    const h = await host('v6hostgw');
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5:0:60::/64', 'via', 'fd00:1::60', 'dev', 'eth0']);
    await h.ns.ip(['-6', 'route', 'add', 'fd00:5:0:9::/64', 'via', 'fd00:1::9', 'dev', 'eth0', 'proto', '119']);
    const b = h.backend6(HOST_GW6);
    expect(await b.prepare()).toEqual({ mtu: 1500 });
    const r = await b.reconcile(OWN6, [gwPeer6(2), gwPeer6(3), gwPeer6(4, 'fd00:2::4')]);
    expect([r.operations, r.failures]).toEqual([3, 0]);
    expect(await h.routes('eth0', 6)).toEqual([
      'fd00:5:0:2::/64 via fd00:1::2 proto 119',
      'fd00:5:0:3::/64 via fd00:1::3 proto 119',
      'fd00:5:0:60::/64 via fd00:1::60 proto 3',
    ]);
    await h.ns.ip(['-6', 'route', 'del', 'fd00:5:0:3::/64', 'dev', 'eth0']);
    const repaired = await b.reconcile(OWN6, [gwPeer6(2), gwPeer6(3)], { resync: true });
    expect([repaired.operations, repaired.failures]).toEqual([1, 0]);
    expect(await h.routes('eth0', 6)).toContain('fd00:5:0:3::/64 via fd00:1::3 proto 119');
  });

  it('directRouting sends on-link peers via the uplink, others over flannel-v6.1, and moves a peer between the two', async () => {
    const h = await host('v6direct');
    const settings = { ...VXLAN6, directRouting: true };
    const b = h.backend6(settings);
    await b.prepare();
    const far = vxPeer6(3, { publicIP: ip6('fd00:2::3') });
    expect(await b.reconcile(OWN6, [vxPeer6(2), far])).toMatchObject({ operations: 4, failures: 0 });
    expect(await h.routes('eth0', 6)).toEqual(['fd00:5:0:2::/64 via fd00:1::2 proto 119']);
    expect(await vxState6(h)).toEqual({
      routes: ['fd00:5:0:3::/64 via fd00:5:0:3:: proto 119 onlink'],
      neighs: ['fd00:5:0:3:: 02:00:00:00:06:03 PERMANENT'],
      fdb: ['02:00:00:00:06:03 fd00:2::3 permanent'],
    });
    expect(await b.reconcile(OWN6, [vxPeer6(2), vxPeer6(3)])).toMatchObject({ operations: 3, failures: 0 });
    expect(await h.routes('eth0', 6)).toEqual(['fd00:5:0:2::/64 via fd00:1::2 proto 119', 'fd00:5:0:3::/64 via fd00:1::3 proto 119']);
    expect(await vxState6(h)).toEqual({ routes: [], neighs: [], fdb: [] });
    const again = h.backend6(settings);
    await again.prepare();
    expect(await again.reconcile(OWN6, [vxPeer6(2), vxPeer6(3)])).toMatchObject({ operations: 0, failures: 0 });
  });
});

describe('dual stack on one host (kernel)', () => {
  it('runs an IPv4 and an IPv6 backend side by side on one uplink, each owning only its own family', async () => {
    const h = await host('dual', 'dual');
    const settings4 = { ...VXLAN, directRouting: true };
    const settings6 = { ...VXLAN6, directRouting: true };
    const b4 = h.backend(settings4);
    const b6 = h.backend6(settings6);
    const mac4 = (await b4.prepare()).vtepMAC;
    const mac6 = (await b6.prepare()).vtepMAC;
    expect(mac4).not.toBe(mac6);
    // Peer 2 is on-link (a route on eth0 in each family), peer 3 is reached over vxlan.
    const v4 = [vxPeer(2), vxPeer(3, { publicIP: ip('198.51.100.3') })];
    const v6 = [vxPeer6(2), vxPeer6(3, { publicIP: ip6('fd00:2::3') })];
    expect(await b4.reconcile(OWN, v4)).toMatchObject({ operations: 4, failures: 0 });
    expect(await b6.reconcile(OWN6, v6)).toMatchObject({ operations: 4, failures: 0 });
    // A resync of either finds its own state complete and leaves the other family's alone.
    expect(await b4.reconcile(OWN, v4, { resync: true })).toMatchObject({ operations: 0, failures: 0 });
    expect(await b6.reconcile(OWN6, v6, { resync: true })).toMatchObject({ operations: 0, failures: 0 });
    expect(await h.routes('eth0', 4)).toEqual(['10.5.2.0/24 via 192.0.2.2 proto 119']);
    expect(await h.routes('eth0', 6)).toEqual(['fd00:5:0:2::/64 via fd00:1::2 proto 119']);
    expect((await vxState(h)).fdb).toEqual(['02:00:00:00:00:03 198.51.100.3 permanent']);
    expect((await vxState6(h)).fdb).toEqual(['02:00:00:00:06:03 fd00:2::3 permanent']);
    expect(await vxState(h)).toEqual({ ...expectedVx([3]), fdb: ['02:00:00:00:00:03 198.51.100.3 permanent'] });
    expect(await vxState6(h)).toEqual({ ...expectedVx6([3]), fdb: ['02:00:00:00:06:03 fd00:2::3 permanent'] });
    // Emptying one family removes only its entries.
    expect(await b6.reconcile(OWN6, [])).toMatchObject({ operations: 4, failures: 0 });
    expect(await h.routes('eth0', 4)).toEqual(['10.5.2.0/24 via 192.0.2.2 proto 119']);
    expect(await h.routes('eth0', 6)).toEqual([]);
    expect((await vxState(h)).routes).toEqual(['10.5.3.0/24 via 10.5.3.0 proto 119 onlink']);
  });
});
