// host-gw and vxlan directRouting: plain routes on the uplink, told apart from the operator's
// by weft's route protocol.
import { describe, expect, it } from 'vitest';
import type { BackendSettings } from '../../src/dataplane/types.js';
import { ip, OWN, VXLAN, vxPeer, vxState, useHosts } from './fixture.js';

const host = useHosts();

const HOST_GW: BackendSettings = { ...VXLAN, type: 'host-gw' };
const gwPeer = (n: number, publicIP = `192.0.2.${n}`) => vxPeer(n, { backendType: 'host-gw', vtepMAC: undefined, publicIP: ip(publicIP) });

describe('host-gw backend (kernel)', () => {
  it('routes each peer subnet via its public IP and never touches the operator routes', async () => {
    const h = await host('hostgw');
    // Before the agent: the operator's route, and weft's route for a host long gone.
    await h.ns.ip(['route', 'add', '10.5.60.0/24', 'via', '192.0.2.60', 'dev', 'eth0']);
    await h.ns.ip(['route', 'add', '10.5.9.0/24', 'via', '192.0.2.9', 'dev', 'eth0', 'proto', '119']);
    const b = h.backend(HOST_GW);
    expect(await b.prepare()).toEqual({ mtu: 1500 });

    const r = await b.reconcile(OWN, [gwPeer(2), gwPeer(3), gwPeer(4, '198.51.100.4'), vxPeer(5)]);
    expect([r.operations, r.failures, r.vtepMAC]).toEqual([3, 0, undefined]);
    expect(await h.routes('eth0')).toEqual([
      '10.5.2.0/24 via 192.0.2.2 proto 119',
      '10.5.3.0/24 via 192.0.2.3 proto 119',
      '10.5.60.0/24 via 192.0.2.60 proto 3',
    ]);
    expect(h.logs.some((l) => l.includes('not routing to peer') && l.includes('10.5.4.0-24') && l.includes('not on-link'))).toBe(true);

    const runs = h.ns.runner.runs;
    expect((await b.reconcile(OWN, [gwPeer(2), gwPeer(3)])).operations).toBe(0);
    const removed = await b.reconcile(OWN, [gwPeer(3)]);
    expect([removed.operations, removed.failures]).toEqual([1, 0]);
    expect(h.ns.runner.runs - runs).toBe(1);
    const moved = await b.reconcile(OWN, [gwPeer(3, '192.0.2.33')]);
    expect([moved.operations, moved.failures]).toEqual([1, 0]);
    expect(await h.routes('eth0')).toEqual(['10.5.3.0/24 via 192.0.2.33 proto 119', '10.5.60.0/24 via 192.0.2.60 proto 3']);

    // Drift: a route deleted by hand comes back on resync.
    await h.ns.ip(['route', 'del', '10.5.3.0/24', 'dev', 'eth0']);
    const repaired = await b.reconcile(OWN, [gwPeer(3, '192.0.2.33')], { resync: true });
    expect([repaired.operations, repaired.failures]).toEqual([1, 0]);
    expect(await h.routes('eth0')).toContain('10.5.3.0/24 via 192.0.2.33 proto 119');
  });
});

describe('vxlan directRouting (kernel)', () => {
  it('routes on-link peers via their public IP, others over vxlan, and moves a peer between the two', async () => {
    const h = await host('direct');
    const b = h.backend({ ...VXLAN, directRouting: true });
    await b.prepare();
    const far = vxPeer(3, { publicIP: ip('198.51.100.3') });

    const r = await b.reconcile(OWN, [vxPeer(2), far]);
    expect([r.operations, r.failures]).toEqual([4, 0]);
    expect(await h.routes('eth0')).toEqual(['10.5.2.0/24 via 192.0.2.2 proto 119']);
    expect(await vxState(h)).toEqual({
      routes: ['10.5.3.0/24 via 10.5.3.0 proto 119 onlink'],
      neighs: ['10.5.3.0 02:00:00:00:00:03 PERMANENT'],
      fdb: ['02:00:00:00:00:03 198.51.100.3 permanent'],
    });

    // Peer 3 moves onto the uplink's subnet: its route moves to eth0, its vxlan entries go.
    const moved = await b.reconcile(OWN, [vxPeer(2), vxPeer(3)]);
    expect([moved.operations, moved.failures]).toEqual([3, 0]);
    expect(await h.routes('eth0')).toEqual(['10.5.2.0/24 via 192.0.2.2 proto 119', '10.5.3.0/24 via 192.0.2.3 proto 119']);
    expect(await vxState(h)).toEqual({ routes: [], neighs: [], fdb: [] });

    // A restarted agent finds all of it right.
    const again = h.backend({ ...VXLAN, directRouting: true });
    await again.prepare();
    expect(await again.reconcile(OWN, [vxPeer(2), vxPeer(3)])).toMatchObject({ operations: 0, failures: 0 });
  });
});
