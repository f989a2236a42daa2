// Route and device ownership against a real kernel, in namespaces (issue 14): weft installs,
// replaces and deletes only routes it created, and never adopts another network's device.
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendSettings } from '../../src/dataplane/types.js';
import { cidr, createHost, ip, OWN, VXLAN, vxPeer, vxState, type Host } from './fixture.js';

const hosts: Host[] = [];
async function host(role: string): Promise<Host> {
  const h = await createHost(role);
  hosts.push(h);
  return h;
}

afterEach(async () => {
  for (const h of hosts.splice(0)) await h.ns.delete();
});

/** Every route of the main table as "dst dev D proto P", sorted (the kernel's own included). */
async function table(h: Host): Promise<string[]> {
  const routes = await h.ns.ipJson<Record<string, unknown>[]>(['-N', '-4', 'route', 'show', 'table', 'main']);
  return routes.map((r) => `${String(r.dst)} dev ${String(r.dev)} proto ${String(r.protocol ?? '3')}`).sort();
}

const notRouting = (h: Host, key: string) => h.logs.filter((l) => l.includes('not routing to peer') && l.includes(key));

describe('route ownership (kernel)', () => {
  it('never replaces, and so never deletes, an operator route to a peer subnet', async () => {
    const h = await host('ownop');
    await h.ns.ip(['route', 'add', '10.5.9.0/24', 'dev', 'eth0', 'proto', 'static']);
    const b = h.backend();
    await b.prepare();
    const r = await b.reconcile(OWN, [vxPeer(2), vxPeer(9)]);
    expect(await table(h)).toContain('10.5.9.0/24 dev eth0 proto 4');
    expect([r.failures, r.routeConflicts, r.skipped, r.peersProgrammed]).toEqual([0, 1, 1, 1]);
    expect((await vxState(h)).routes).toEqual(['10.5.2.0/24 via 10.5.2.0 proto 119 onlink']);
    expect(notRouting(h, '10.5.9.0-24')).toHaveLength(1);
    expect(notRouting(h, '10.5.9.0-24')[0]).toContain('a route to 10.5.9.0/24 that weft did not create holds it (dev eth0 proto 4)');

    // Resyncs and the lease's deletion leave the operator's route where it was.
    await b.reconcile(OWN, [vxPeer(2), vxPeer(9)], { resync: true });
    expect(notRouting(h, '10.5.9.0-24')).toHaveLength(1);
    await b.reconcile(OWN, [vxPeer(2)]);
    await b.reconcile(OWN, [vxPeer(2)], { resync: true });
    expect(await table(h)).toContain('10.5.9.0/24 dev eth0 proto 4');

    // An operator route that appears under one of weft's is left alone from the next resync on.
    await h.ns.ip(['route', 'replace', '10.5.2.0/24', 'dev', 'eth0', 'proto', 'static']);
    const again = await b.reconcile(OWN, [vxPeer(2)], { resync: true });
    expect([again.operations, again.routeConflicts]).toEqual([0, 1]);
    expect(await table(h)).toContain('10.5.2.0/24 dev eth0 proto 4');
  });

  it('never takes over the uplink\'s own subnet route, whatever a lease says', async () => {
    const h = await host('ownul');
    // A Network over the underlay (apply refuses it now; a stored config or flanneld may not).
    const settings: BackendSettings = { ...VXLAN, network: cidr('192.0.0.0/16') };
    const b = h.backend(settings);
    await b.prepare();
    const peer = vxPeer(2, { key: '192.0.2.0-24', subnet: cidr('192.0.2.0/24'), publicIP: ip('192.0.2.5') });
    const r = await b.reconcile(cidr('192.0.1.0/24'), [peer]);
    expect(await table(h)).toContain('192.0.2.0/24 dev eth0 proto 2');
    expect([r.failures, r.routeConflicts]).toEqual([0, 1]);
    await b.reconcile(cidr('192.0.1.0/24'), [], { resync: true });
    expect(await table(h)).toContain('192.0.2.0/24 dev eth0 proto 2');
  });

  it('host-gw leaves an operator route on the uplink to a peer subnet alone', async () => {
    const h = await host('owngw');
    await h.ns.ip(['route', 'add', '10.5.9.0/24', 'via', '192.0.2.60', 'dev', 'eth0', 'proto', 'static']);
    const b = h.backend({ ...VXLAN, type: 'host-gw' });
    const gw = (n: number) => vxPeer(n, { backendType: 'host-gw', vtepMAC: undefined });
    const r = await b.reconcile(OWN, [gw(3), gw(9)]);
    expect(await h.routes('eth0')).toEqual(['10.5.3.0/24 via 192.0.2.3 proto 119', '10.5.9.0/24 via 192.0.2.60 proto 4']);
    expect([r.failures, r.routeConflicts]).toEqual([0, 1]);
    await b.reconcile(OWN, [], { resync: true });
    expect(await h.routes('eth0')).toEqual(['10.5.9.0/24 via 192.0.2.60 proto 4']);
  });
});

describe('device ownership (kernel)', () => {
  it('refuses to adopt flannel.<VNI> that another network\'s agent made, and changes nothing of it', async () => {
    const h = await host('owndev');
    const a = h.backend({ ...VXLAN, owner: 'weft:default' });
    await a.prepare();
    await a.reconcile(OWN, [vxPeer(2), vxPeer(3)]);
    const before = { state: await vxState(h), link: await h.link('flannel.1') };
    expect(before.link?.addr_info?.filter((x) => x.family === 'inet').map((x) => x.local)).toEqual(['10.5.1.0']);

    // A second Network with the same VNI on this host.
    const blue = h.backend({ ...VXLAN, owner: 'weft:blue', network: cidr('10.6.0.0/16') });
    await expect(blue.prepare()).rejects.toThrow(/flannel\.1 belongs to another network's agent on this host \(alias weft:default; it uses VNI 1 too\)/);
    await expect(blue.reconcile(cidr('10.6.1.0/24'), [vxPeer(4, { key: '10.6.4.0-24', subnet: cidr('10.6.4.0/24') })], { resync: true })).rejects.toThrow(/another network's agent/);
    expect(await vxState(h)).toEqual(before.state);
    const addrs = (l: typeof before.link) => l?.addr_info?.map((x) => `${x.family} ${x.local}/${x.prefixlen}`);
    expect(addrs(await h.link('flannel.1'))).toEqual(addrs(before.link));

    // The same network's agent, restarted, adopts it as ever (same MAC).
    const again = h.backend({ ...VXLAN, owner: 'weft:default' });
    expect((await again.prepare()).vtepMAC).toBe(before.link?.address);
  });
});
