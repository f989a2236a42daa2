// The vxlan backend against a real kernel, inside a namespace each test creates.
import { describe, expect, it } from 'vitest';
import { expectedVx, ip, OWN, VXLAN, vxPeer, vxState, useHosts } from './fixture.js';

const host = useHosts();

describe('vxlan backend (kernel)', () => {
  it('creates flannel.1 as flannel does and publishes its real MAC', async () => {
    const h = await host('vxdev');
    const prepared = await h.backend().prepare();
    const link = (await h.link('flannel.1'))!;
    expect(prepared).toEqual({ vtepMAC: link.address, mtu: 1450 });
    expect(link.mtu).toBe(1450);
    expect(link.flags).toContain('UP');
    expect(link.linkinfo?.info_kind).toBe('vxlan');
    expect(link.linkinfo?.info_data).toMatchObject({ id: 1, local: '192.0.2.1', link: 'eth0', port: 8472, learning: false });
  });

  it('converges peers, then does only the work each change needs', async () => {
    const h = await host('vxconv');
    const b = h.backend();
    await b.prepare();
    const peers = [vxPeer(2), vxPeer(3), vxPeer(4)];

    const first = await b.reconcile(OWN, peers);
    expect([first.operations, first.failures]).toEqual([9, 0]);
    expect(first.byKind).toEqual({ route: { ok: 3, failed: 0 }, neigh: { ok: 3, failed: 0 }, fdb: { ok: 3, failed: 0 } });
    expect(first.peersProgrammed).toBe(3);
    expect(await vxState(h)).toEqual(expectedVx([2, 3, 4]));
    const addrs = (await h.link('flannel.1'))!.addr_info!.filter((a) => a.family === 'inet');
    expect(addrs.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.5.1.0/32']);

    // Same peers: nothing to do, and not even a process started.
    const runs = h.ns.runner.runs;
    expect((await b.reconcile(OWN, peers)).operations).toBe(0);
    expect(h.ns.runner.runs).toBe(runs);

    // One peer gone: exactly its three entries go, in at most three batch runs.
    const removed = await b.reconcile(OWN, [vxPeer(2), vxPeer(4)]);
    expect([removed.operations, removed.failures]).toEqual([3, 0]);
    expect([removed.byKind, removed.peersProgrammed]).toEqual([{ route: { ok: 1, failed: 0 }, neigh: { ok: 1, failed: 0 }, fdb: { ok: 1, failed: 0 } }, 2]);
    expect(h.ns.runner.runs - runs).toBe(3);
    expect(await vxState(h)).toEqual(expectedVx([2, 4]));

    // A new VTEP MAC: neighbour and FDB replaced, old FDB entry deleted, route kept.
    const changed = await b.reconcile(OWN, [vxPeer(2), vxPeer(4, { vtepMAC: '02:00:00:00:aa:04' })]);
    expect([changed.operations, changed.failures]).toEqual([3, 0]);
    expect(changed.byKind).toEqual({ route: { ok: 0, failed: 0 }, neigh: { ok: 1, failed: 0 }, fdb: { ok: 2, failed: 0 } });
    expect(await vxState(h)).toEqual(expectedVx([2, 4], { 4: '02:00:00:00:aa:04' }));

    // A new public IP: one FDB replace.
    const moved = await b.reconcile(OWN, [vxPeer(2, { publicIP: ip('192.0.2.22') }), vxPeer(4, { vtepMAC: '02:00:00:00:aa:04' })]);
    expect([moved.operations, moved.failures]).toEqual([1, 0]);
    expect(await vxState(h)).toEqual(expectedVx([2, 4], { 4: '02:00:00:00:aa:04' }, { 2: '192.0.2.22' }));
  });

  it('repairs entries deleted by hand on resync', async () => {
    const h = await host('vxdrift');
    const b = h.backend();
    await b.prepare();
    const peers = [vxPeer(2), vxPeer(3), vxPeer(4)];
    await b.reconcile(OWN, peers);
    await h.ns.ip(['route', 'del', '10.5.3.0/24', 'dev', 'flannel.1']);
    await h.ns.ip(['neigh', 'del', '10.5.4.0', 'dev', 'flannel.1']);
    await h.ns.runner.mustRun('bridge', ['fdb', 'del', '02:00:00:00:00:02', 'dev', 'flannel.1', 'dst', '192.0.2.2', 'self']);

    // Without resync the backend trusts its belief (no dump per event).
    expect((await b.reconcile(OWN, peers)).operations).toBe(0);
    const repaired = await b.reconcile(OWN, peers, { resync: true });
    expect([repaired.operations, repaired.failures]).toEqual([3, 0]);
    expect(await vxState(h)).toEqual(expectedVx([2, 3, 4]));
  });

  it('recreates a deleted device on resync, restores everything and reports the new MAC', async () => {
    const h = await host('vxgone');
    const b = h.backend();
    const { vtepMAC } = await b.prepare();
    const peers = [vxPeer(2), vxPeer(3), vxPeer(4)];
    await b.reconcile(OWN, peers);
    await h.ns.ip(['link', 'del', 'flannel.1']);

    const r = await b.reconcile(OWN, peers, { resync: true });
    const link = (await h.link('flannel.1'))!;
    expect([r.operations, r.failures]).toEqual([9, 0]);
    expect(r.vtepMAC).toBe(link.address);
    expect(r.vtepMAC).not.toBe(vtepMAC);
    expect(link.addr_info!.filter((a) => a.family === 'inet').map((a) => a.local)).toEqual(['10.5.1.0']);
    expect(await vxState(h)).toEqual(expectedVx([2, 3, 4]));
  });

  it('notices a deleted device through refused operations and recreates it on the next call', async () => {
    const h = await host('vxgone2');
    const b = h.backend();
    await b.prepare();
    await b.reconcile(OWN, [vxPeer(2)]);
    await h.ns.ip(['link', 'del', 'flannel.1']);

    const refused = await b.reconcile(OWN, [vxPeer(2), vxPeer(3)]);
    expect(refused.failures).toBe(3);
    // Peer 3's neighbour and FDB entry were refused, so its route was not even tried.
    expect(refused.byKind).toEqual({ route: { ok: 0, failed: 1 }, neigh: { ok: 0, failed: 1 }, fdb: { ok: 0, failed: 1 } });
    expect(refused.peersProgrammed).toBe(1); // peer 2 counts until the next call reads the kernel
    const again = await b.reconcile(OWN, [vxPeer(2), vxPeer(3)]);
    expect([again.operations, again.failures]).toEqual([6, 0]);
    expect(again.peersProgrammed).toBe(2);
    expect(again.vtepMAC).toBe((await h.link('flannel.1'))!.address);
    expect(await vxState(h)).toEqual(expectedVx([2, 3]));
    expect(h.logs.some((l) => l.includes('refused'))).toBe(true);
  });

  it('at startup adopts the device, keeps valid entries and removes only stale ones', async () => {
    const h = await host('vxstart');
    const before = h.backend();
    const { vtepMAC } = await before.prepare();
    await before.reconcile(OWN, [vxPeer(2), vxPeer(3), vxPeer(4)]);
    // Left behind while the agent was down: a peer whose lease vanished, a host route, an
    // extra address, weft's route on the uplink for a vanished direct peer, and the operator's
    // own route on the uplink (never touched).
    await h.ns.ip(['neigh', 'replace', '10.5.9.0', 'lladdr', '02:00:00:00:00:09', 'dev', 'flannel.1', 'nud', 'permanent']);
    await h.ns.runner.mustRun('bridge', ['fdb', 'append', '02:00:00:00:00:09', 'dev', 'flannel.1', 'dst', '192.0.2.9', 'self', 'permanent']);
    await h.ns.ip(['route', 'add', '10.5.9.0/24', 'via', '10.5.9.0', 'dev', 'flannel.1', 'onlink']);
    await h.ns.ip(['route', 'add', '10.5.0.5/32', 'via', '10.5.2.0', 'dev', 'flannel.1', 'onlink', 'proto', 'static']);
    await h.ns.ip(['addr', 'add', '10.5.77.1/24', 'dev', 'flannel.1']);
    await h.ns.ip(['route', 'add', '10.5.8.0/24', 'via', '192.0.2.8', 'dev', 'eth0', 'proto', '119']);
    await h.ns.ip(['route', 'add', '10.5.60.0/24', 'via', '192.0.2.60', 'dev', 'eth0', 'proto', 'static']);
    await h.ns.ip(['route', 'add', '10.99.0.0/24', 'via', '192.0.2.60', 'dev', 'eth0', 'proto', '119']);

    const after = h.backend(); // the agent restarted
    expect((await after.prepare()).vtepMAC).toBe(vtepMAC);
    const runsBefore = h.ns.runner.runs;
    const r = await after.reconcile(OWN, [vxPeer(2), vxPeer(3), vxPeer(5)]);
    // 4 and 9 removed (3 each), the host route and weft's uplink route removed, 5 added.
    // Peers 2 and 3 were valid: not one operation for them.
    expect([r.operations, r.failures]).toEqual([11, 0]);
    expect(r.vtepMAC).toBe(vtepMAC);
    expect(await vxState(h)).toEqual(expectedVx([2, 3, 5]));
    expect(await h.routes('eth0')).toEqual(['10.5.60.0/24 via 192.0.2.60 proto 4', '10.99.0.0/24 via 192.0.2.60 proto 119']);
    const addrs = (await h.link('flannel.1'))!.addr_info!.filter((a) => a.family === 'inet');
    expect(addrs.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.5.1.0/32']);
    // Device read, address fix, four dumps, three batches.
    expect(h.ns.runner.runs - runsBefore).toBeLessThanOrEqual(9);
  });

  it('adopts flanneld\'s device with learning on (its Learning option) in place: learning off, MAC, address and peers kept', async () => {
    const h = await host('vxlearn');
    await h.ns.ip(['link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', '192.0.2.1', 'dev', 'eth0', 'dstport', '8472', 'learning']);
    await h.ns.ip(['link', 'set', 'flannel.1', 'mtu', '1450', 'up']);
    const before = (await h.link('flannel.1'))!;
    expect(before.linkinfo?.info_data?.learning).toBe(true);
    const { vtepMAC } = await h.backend().prepare();
    const after = (await h.link('flannel.1'))!;
    expect([vtepMAC, after.address]).toEqual([before.address, before.address]);
    expect(after.linkinfo?.info_data).toMatchObject({ id: 1, local: '192.0.2.1', link: 'eth0', port: 8472, learning: false });
    expect(h.logs.filter((l) => l.includes('replacing incompatible vxlan device'))).toHaveLength(0);
    expect(h.logs.filter((l) => l.includes('turned learning off, MAC kept'))).toHaveLength(1);
  });

  it('replaces an incompatible device (other VNI, other local address, other port)', async () => {
    const h = await host('vxincompat');
    const variants: string[][] = [
      ['id', '7', 'local', '192.0.2.1', 'dev', 'eth0', 'nolearning', 'dstport', '8472'],
      ['id', '1', 'local', '192.0.2.99', 'dev', 'eth0', 'nolearning', 'dstport', '8472'],
      ['id', '1', 'local', '192.0.2.1', 'dev', 'eth0', 'nolearning', 'dstport', '4789'],
    ];
    for (const v of variants) {
      await h.ns.ip(['link', 'add', 'flannel.1', 'type', 'vxlan', ...v]);
      const old = (await h.link('flannel.1'))!.address;
      const { vtepMAC } = await h.backend().prepare();
      const link = (await h.link('flannel.1'))!;
      expect(vtepMAC).toBe(link.address);
      expect(vtepMAC).not.toBe(old);
      expect(link.linkinfo?.info_data).toMatchObject({ id: 1, local: '192.0.2.1', link: 'eth0', port: 8472, learning: false });
      await h.ns.ip(['link', 'del', 'flannel.1']);
    }
    expect(h.logs.filter((l) => l.includes('replacing incompatible vxlan device'))).toHaveLength(3);
  });

  it('honours the configured port, and the configured MTU as flanneld means it: the underlay MTU, less 50 on the device', async () => {
    const h = await host('vxport');
    const { mtu } = await h.backend({ ...VXLAN, port: 4789, mtu: 1400 }).prepare();
    const link = (await h.link('flannel.1'))!;
    expect([mtu, link.mtu, link.linkinfo?.info_data?.port]).toEqual([1350, 1350, 4789]);
  });
});
