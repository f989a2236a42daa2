import { describe, expect, it } from 'vitest';
import { renderOp } from '../../src/dataplane/batch.js';
import { desiredState, emptyState, toLinkName, type KernelState, type LinkName } from '../../src/dataplane/model.js';
import { applyToState, kernelTables, plan, planPending, replaceDataplane, tablesSink, type KernelTables, type RouteConflict } from '../../src/dataplane/planner.js';
import { stateSink, type KernelSink } from '../../src/dataplane/observe.js';
import type { BackendSettings, Peer, Uplink } from '../../src/dataplane/types.js';
import { cidr, ip, vxPeer } from '../helpers/peers.js';

const dev = (s: string) => toLinkName(s) as LinkName;

const vxlan: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: cidr('10.5.0.0/16') };
const hostGw: BackendSettings = { ...vxlan, type: 'host-gw' };
const uplink: Uplink = { name: 'eth0', index: 2, mtu: 1500, address: ip('192.0.2.1'), prefixLength: 24 };
const own = cidr('10.5.1.0/24');

const peer = vxPeer;

function desired(peers: Peer[], settings = vxlan, ownSubnet = own): KernelState {
  return desiredState({ settings, uplink, uplinkDev: dev('eth0'), vxlanDev: dev('flannel.1'), ownSubnet, peers }).state;
}

/** The plan as batch lines: what the kernel would be told, in order. */
function lines(want: KernelState, have: KernelState): string[] {
  return plan(want, have).map(renderOp);
}

describe('dataplane model', () => {
  it('gives a vxlan peer a permanent neighbour, an FDB entry and an onlink route', () => {
    const s = desired([peer(2)]);
    expect(lines(s, emptyState())).toEqual([
      'neigh replace 10.5.2.0 lladdr 02:00:00:00:00:02 dev flannel.1 nud permanent',
      'fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self permanent',
      'route replace 10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink proto 119',
    ]);
  });

  it('leaves out its own subnet, other backends, MAC-less peers, overlaps and subnets outside the network', () => {
    const r = desiredState({
      settings: vxlan,
      uplink,
      uplinkDev: dev('eth0'),
      vxlanDev: dev('flannel.1'),
      ownSubnet: own,
      peers: [
        peer(1),
        peer(3, { backendType: 'host-gw' }),
        peer(4, { vtepMAC: undefined }),
        peer(5, { subnet: cidr('10.5.0.0/20'), key: '10.5.0.0-20' }),
        peer(6, { subnet: cidr('0.0.0.0/0'), key: '0.0.0.0-0' }),
        peer(7, { vtepMAC: '02:00:00:00:00:02' }),
        peer(2),
        peer(8, { vtepMAC: '02:00:00:00:00:02' }),
        peer(9, { publicIP: ip('192.0.2.1') }),
      ],
    });
    expect([...r.state.routes.keys()]).toEqual(['10.5.7.0/24']);
    expect(r.skipped.map((s) => s.key)).toEqual(['10.5.4.0-24', '10.5.0.0-20', '0.0.0.0-0', '10.5.2.0-24', '10.5.8.0-24', '10.5.9.0-24']);
    expect(r.skipped[3]!.reason).toMatch(/already used by 10\.5\.7\.0-24/);
  });
});

describe('dataplane planner', () => {
  it('never replaces a route to a destination a foreign route holds; keeps it pending until that route goes', () => {
    const t = kernelTables();
    const want = desired([peer(2), peer(9)]);
    for (const [k, v] of want.routes) t.routes.setDesired(k, v);
    for (const [k, v] of want.neighs) t.neighs.setDesired(k, v);
    for (const [k, v] of want.fdb) t.fdb.setDesired(k, v);
    const dump = desired([peer(2)]);
    // The operator's 10.5.9.0/24 dev eth0 proto static, and weft's stale 10.5.7.0/24 route.
    dump.foreign = new Map([['10.5.9.0/24', { dst: cidr('10.5.9.0/24'), dev: 'eth0', proto: 4, type: 'unicast' }]]);
    dump.routes.set('10.5.7.0/24', desired([peer(7)]).routes.get('10.5.7.0/24')!);
    replaceDataplane(t, dump);
    const held: RouteConflict[] = [];
    const ops = planPending(t, held).map((o) => `${o.kind} ${o.action} ${o.key}`);
    expect(ops).toEqual(['route del 10.5.7.0/24', 'neigh replace 10.5.9.0', 'fdb replace 02:00:00:00:00:09']);
    expect(held.map((c) => [c.key, c.by.dev])).toEqual([['10.5.9.0/24', 'eth0']]);
    expect(t.routes.pendingUpdates().has('10.5.9.0/24')).toBe(true);
    // The operator removes it: the next dump has no foreign route there, and weft routes the peer.
    replaceDataplane(t, desired([peer(2)]));
    expect(planPending(t).filter((o) => o.kind === 'route').map((o) => `${o.action} ${o.key}`)).toEqual(['replace 10.5.9.0/24']);
  });

  it('adds a peer: neighbour, then FDB, then route', () => {
    const have = desired([peer(2)]);
    const ops = plan(desired([peer(2), peer(3)]), have);
    expect(ops.map((o) => `${o.kind} ${o.action} ${o.key}`)).toEqual([
      'neigh replace 10.5.3.0',
      'fdb replace 02:00:00:00:00:03',
      'route replace 10.5.3.0/24',
    ]);
  });

  it('removes a peer: route, then FDB, then neighbour', () => {
    expect(lines(desired([peer(2)]), desired([peer(2), peer(3)]))).toEqual([
      'route del 10.5.3.0/24 dev flannel.1 proto 119',
      'fdb del 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.3 self',
      'neigh del 10.5.3.0 dev flannel.1',
    ]);
  });

  it('changes a MAC with replaces and a delete of the old FDB entry, without touching the route', () => {
    const have = desired([peer(2), peer(3)]);
    expect(lines(desired([peer(2), peer(3, { vtepMAC: '02:00:00:00:aa:03' })]), have)).toEqual([
      'neigh replace 10.5.3.0 lladdr 02:00:00:00:aa:03 dev flannel.1 nud permanent',
      'fdb replace 02:00:00:00:aa:03 dev flannel.1 dst 192.0.2.3 self permanent',
      'fdb del 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.3 self',
    ]);
  });

  it('changes a public IP with one FDB replace', () => {
    const have = desired([peer(2), peer(3)]);
    expect(lines(desired([peer(2), peer(3, { publicIP: ip('192.0.2.33') })]), have)).toEqual([
      'fdb replace 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.33 self permanent',
    ]);
  });

  it('plans nothing when the kernel already matches', () => {
    const peers = [peer(2), peer(3), peer(4)];
    expect(plan(desired(peers), desired(peers))).toEqual([]);
  });

  it('orders a mixed plan in three tool runs: ip, bridge, ip', () => {
    const have = desired([peer(2), peer(3)]);
    const ops = plan(desired([peer(2, { vtepMAC: '02:00:00:00:bb:02' }), peer(4)]), have);
    expect(ops.map((o) => `${o.kind} ${o.action} ${o.key}`)).toEqual([
      'route del 10.5.3.0/24',
      'neigh replace 10.5.2.0',
      'neigh replace 10.5.4.0',
      'fdb replace 02:00:00:00:bb:02',
      'fdb replace 02:00:00:00:00:04',
      'fdb del 02:00:00:00:00:02',
      'fdb del 02:00:00:00:00:03',
      'route replace 10.5.4.0/24',
      'neigh del 10.5.3.0',
    ]);
    const tools = ops.map((o) => (o.kind === 'fdb' ? 'bridge' : 'ip'));
    const runs = tools.filter((t, i) => i === 0 || tools[i - 1] !== t);
    expect(runs).toEqual(['ip', 'bridge', 'ip']);
  });

  it('with directRouting, routes on-link peers via their public IP on the uplink, others over vxlan', () => {
    const settings = { ...vxlan, directRouting: true };
    const far = peer(3, { publicIP: ip('198.51.100.3') });
    expect(lines(desired([peer(2), far], settings), emptyState())).toEqual([
      'neigh replace 10.5.3.0 lladdr 02:00:00:00:00:03 dev flannel.1 nud permanent',
      'fdb replace 02:00:00:00:00:03 dev flannel.1 dst 198.51.100.3 self permanent',
      'route replace 10.5.2.0/24 via 192.0.2.2 dev eth0 proto 119',
      'route replace 10.5.3.0/24 via 10.5.3.0 dev flannel.1 onlink proto 119',
    ]);
  });

  it('moves a peer between vxlan and direct routing with a route replace and clean-up', () => {
    const settings = { ...vxlan, directRouting: true };
    const before = desired([peer(3, { publicIP: ip('198.51.100.3') })], settings);
    expect(lines(desired([peer(3)], settings), before)).toEqual([
      'fdb del 02:00:00:00:00:03 dev flannel.1 dst 198.51.100.3 self',
      'route replace 10.5.3.0/24 via 192.0.2.3 dev eth0 proto 119',
      'neigh del 10.5.3.0 dev flannel.1',
    ]);
  });

  it('host-gw: a route via the public IP, only for on-link peers', () => {
    const peers = [peer(2, { backendType: 'host-gw' }), peer(3, { backendType: 'host-gw', publicIP: ip('198.51.100.3') })];
    const r = desiredState({ settings: hostGw, uplink, uplinkDev: dev('eth0'), ownSubnet: own, peers });
    expect(lines(r.state, emptyState())).toEqual(['route replace 10.5.2.0/24 via 192.0.2.2 dev eth0 proto 119']);
    expect(r.skipped).toEqual([{ key: '10.5.3.0-24', reason: expect.stringMatching(/not on-link/) }]);
    expect(lines(emptyState(), r.state)).toEqual(['route del 10.5.2.0/24 dev eth0 proto 119']);
  });

  it('updates the believed state only with operations that succeeded', () => {
    const want = desired([peer(2)]);
    const believed = emptyState();
    const ops = plan(want, believed);
    applyToState(believed, ops, [true, false, true]);
    expect([believed.neighs.size, believed.fdb.size, believed.routes.size]).toEqual([1, 0, 1]);
    expect(plan(want, believed).map(renderOp)).toEqual(['fdb replace 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self permanent']);
  });
});

describe('a kernel dump read into the tables in place (the periodic resync)', () => {
  const vx = dev('flannel.1');
  const route = (dst: string, via: string, d = vx) => ({ dst: cidr(dst), via: ip(via), dev: d, onlink: true, proto: 119, metric: 0 });
  const neigh = (a: string, m: string) => ({ ip: ip(a), mac: m as never, dev: vx, permanent: true });
  const fdb = (m: string, dst: string) => ({ mac: m as never, dst: ip(dst), dev: vx, permanent: true, plain: true });
  /** One dump, as a list of sink calls (the kernel's order). */
  const dump = (sink: KernelSink) => {
    sink.route(route('10.5.2.0/24', '10.5.2.0'));
    sink.route(route('10.5.2.0/24', '10.5.2.0', dev('eth0'))); // a second route under one key
    sink.route(route('10.5.9.0/24', '10.5.9.0')); // not desired
    sink.neigh(neigh('10.5.2.0', '02:00:00:00:00:02'));
    sink.fdb(fdb('02:00:00:00:00:02', '192.0.2.2'));
    sink.fdb(fdb('02:00:00:00:00:02', '192.0.2.99')); // a second remote for one MAC
    sink.fdb(fdb('02:00:00:00:00:03', '192.0.2.3')); // changed by hand (desired: 192.0.2.33)
    sink.foreign({ dst: cidr('10.5.7.0/24'), dev: 'eth1', proto: 3, type: 'unicast' });
  };
  const tables = () => {
    const t = kernelTables();
    const want = desired([peer(2), peer(3), peer(7)]);
    want.fdb.set('02:00:00:00:00:03', fdb('02:00:00:00:00:03', '192.0.2.33'));
    for (const [k, v] of want.routes) t.routes.setDesired(k, v);
    for (const [k, v] of want.neighs) t.neighs.setDesired(k, v);
    for (const [k, v] of want.fdb) t.fdb.setDesired(k, v);
    return t;
  };
  const describeTables = (t: KernelTables) => ({
    routes: [...t.routes.dataplaneEntries()].map(([k, v]) => `${k}: ${v.dst} dev ${v.dev}`).sort(),
    neighs: [...t.neighs.dataplaneEntries()].map(([k]) => k).sort(),
    fdb: [...t.fdb.dataplaneEntries()].map(([k, v]) => `${k}: ${v.dst}`).sort(),
    foreign: [...t.foreign.keys()],
    plan: planPending(t).map(renderOp),
  });

  it('ends as replaceDataplane of the same dump does, seconds under a key of their own included', () => {
    const byReplace = tables();
    const state = emptyState();
    dump(stateSink(state));
    replaceDataplane(byReplace, state);
    for (const previous of [emptyState(), state]) {
      // From an empty view (the first pass), and from a view that already holds the dump.
      const inPlace = tables();
      replaceDataplane(inPlace, previous);
      const sink = tablesSink(inPlace);
      dump(sink);
      sink.end();
      expect(describeTables(inPlace)).toEqual(describeTables(byReplace));
    }
    expect(describeTables(byReplace).routes).toContain('10.5.2.0/24 dev eth0 #1: 10.5.2.0/24 dev eth0');
    // Deleted by hand, changed by hand, added by someone: all planned; peer 7's route is held by a foreign route.
    expect(describeTables(byReplace).plan).toEqual([
      'route del 10.5.2.0/24 dev eth0 proto 119',
      'route del 10.5.9.0/24 dev flannel.1 proto 119',
      'neigh replace 10.5.3.0 lladdr 02:00:00:00:00:03 dev flannel.1 nud permanent',
      'neigh replace 10.5.7.0 lladdr 02:00:00:00:00:07 dev flannel.1 nud permanent',
      'fdb replace 02:00:00:00:00:03 dev flannel.1 dst 192.0.2.33 self permanent',
      'fdb replace 02:00:00:00:00:07 dev flannel.1 dst 192.0.2.7 self permanent',
      'fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.99 self',
      'route replace 10.5.3.0/24 via 10.5.3.0 dev flannel.1 onlink proto 119',
    ]);
    expect(describeTables(byReplace).fdb).toContain('02:00:00:00:00:02 192.0.2.99: 192.0.2.99');
  });
});

