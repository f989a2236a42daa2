// The incremental path (DesiredPeers fed peer deltas, the kernel tables' pending sets planned and
// applied) must always reach the state a from-scratch computation gives, over random sequences
// of adds, MAC changes, removals, duplicate MACs, bad MACs and other backends. Pure: the
// "kernel" is the tables' dataplane view, updated from each plan's outcome.
import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { DesiredPeers } from '../../src/dataplane/desired.js';
import { desiredState, emptyState, modelContext, toLinkName, type KernelState } from '../../src/dataplane/model.js';
import { applyResults, kernelTables, plan, planPending, replaceDataplane, type KernelTables } from '../../src/dataplane/planner.js';
import type { BackendSettings, Peer } from '../../src/dataplane/types.js';

function dataplaneView(t: KernelTables): KernelState {
  const s = emptyState();
  for (const [k, v] of t.routes.dataplaneEntries()) s.routes.set(k, v);
  for (const [k, v] of t.neighs.dataplaneEntries()) s.neighs.set(k, v);
  for (const [k, v] of t.fdb.dataplaneEntries()) s.fdb.set(k, v);
  return s;
}

function run(directRouting: boolean, rounds: number, withSince: boolean): { ops: number; maxOpsPerRound: number } {
  let seed = directRouting ? 7 : 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 16) % n;
  };
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const settings: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting, gbp: false, network: Cidr.parse('10.0.0.0/8')! };
  const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 };
  const ctx = modelContext({ settings, uplink, uplinkDev: toLinkName('eth0')!, vxlanDev: toLinkName('flannel.1')!, ownSubnet: Cidr.parse('10.0.0.0/24')! });
  let revision = 100;
  const makePeer = (i: number, dups: boolean): Peer => {
    const r = rand(20);
    const mac = r === 0 ? 'not-a-mac' : dups && r < 3 ? `02:00:00:00:07:0${r}` : `02:00:00:00:${hex(rand(40))}:${hex(i)}`;
    const subnet = `10.${1 + (i >> 8)}.${i & 255}.0`;
    return {
      key: `${subnet}-24`,
      subnet: Cidr.parse(`${subnet}/24`)!,
      publicIP: Ipv4.parse(rand(4) === 0 ? `192.0.2.${2 + (i % 200)}` : `198.18.0.${1 + (i % 250)}`)!,
      backendType: rand(30) === 0 ? 'host-gw' : 'vxlan',
      vtepMAC: mac,
      vni: 1,
      // A lease re-created gets a new create revision; a changed one keeps its own.
      ...(withSince ? { since: rand(2) === 0 ? ++revision : 100 - i } : {}),
    };
  };
  const peers = new Map<number, Peer>();
  const tables = kernelTables();
  const desired = new DesiredPeers(tables);
  let ops = 0;
  let maxOpsPerRound = 0;
  for (let round = 0; round < rounds; round++) {
    const dups = round < rounds / 2; // first half: shared VTEP MACs make conflicts
    const delta = new Map<string, Peer | undefined>();
    for (let c = 1 + rand(3); c > 0; c--) {
      const i = rand(60);
      const old = peers.get(i);
      if (old && rand(3) === 0) {
        peers.delete(i);
        delta.set(old.key, undefined);
      } else {
        const p = makePeer(i, dups);
        // Gone and back in one round is a new lease (last in the list): hand the removal over first.
        if (!old && delta.has(p.key)) {
          desired.update(ctx, delta);
          delta.clear();
        }
        peers.set(i, p);
        delta.set(p.key, p);
      }
    }
    desired.update(ctx, delta);
    const planned = planPending(tables);
    // Now and then the kernel refuses an operation: it stays pending for the next round.
    const ok = planned.map(() => rand(25) !== 0);
    applyResults(tables, planned, ok);
    ops += planned.length;
    maxOpsPerRound = Math.max(maxOpsPerRound, planned.length);
    if (round % 97 === 0) {
      // A resync: the dump replaces the dataplane view; what drifted becomes pending.
      const dump = dataplaneView(tables);
      const gone = [...dump.routes.keys()].find((k) => tables.routes.hasDesired(k));
      if (gone) dump.routes.delete(gone);
      replaceDataplane(tables, dump);
      if (gone) expect(tables.routes.pendingUpdates().has(gone), `round ${round}: drift pending`).toBe(true);
    }
    const all = planPending(tables);
    applyResults(tables, all, all.map(() => true));
    expect(tables.routes.inSync && tables.neighs.inSync && tables.fdb.inSync).toBe(true);
    const want = desiredState({ ...ctx, peers: [...peers.values()] }).state;
    const kernel = dataplaneView(tables);
    for (const kind of ['routes', 'neighs', 'fdb'] as const) {
      expect([...kernel[kind].keys()].sort(), `round ${round}: ${kind}`).toEqual([...want[kind].keys()].sort());
    }
    expect(plan(want, kernel), `round ${round}: values differ`).toEqual([]);
  }
  return { ops, maxOpsPerRound };
}

describe('incremental dataplane planning', () => {
  it.each([
    [false, false],
    [true, false],
    [false, true],
  ])('matches a from-scratch plan after every random change (directRouting %s, create revisions %s)', (directRouting, withSince) => {
    const { maxOpsPerRound } = run(directRouting, 2000, withSince);
    // A round changes at most 3 peers (a few more through a conflict): never the whole set.
    expect(maxOpsPerRound).toBeLessThan(20);
  });

  it('costs work proportional to the change, not to the peers known', () => {
    const settings: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false };
    const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 };
    const ctx = modelContext({ settings, uplink, uplinkDev: toLinkName('eth0')!, vxlanDev: toLinkName('flannel.1')!, ownSubnet: Cidr.parse('10.0.0.0/24')! });
    const peer = (i: number, mac = i): Peer => ({
      key: `p${i}`,
      subnet: Cidr.parse(`10.${1 + (i >> 8)}.${i & 255}.0/24`)!,
      publicIP: Ipv4.parse(`198.18.${i >> 8}.${i & 255}`)!,
      backendType: 'vxlan',
      vtepMAC: `02:00:00:01:${(mac >> 8).toString(16).padStart(2, '0')}:${(mac & 255).toString(16).padStart(2, '0')}`,
    });
    const tables = kernelTables();
    const desired = new DesiredPeers(tables);
    desired.update(ctx, new Map(Array.from({ length: 5000 }, (_, i) => [`p${i}`, peer(i)] as const)));
    applyResults(tables, planPending(tables), new Array(15000).fill(true));
    // One changed MAC: one neighbour and one FDB entry replaced, the old FDB entry removed.
    desired.update(ctx, new Map([['p7', peer(7, 9999)]]));
    expect(planPending(tables).map((op) => `${op.kind} ${op.action}`)).toEqual(['neigh replace', 'fdb replace', 'fdb del']);
    // A second lease taking p7's new MAC loses it to p7 (the older), and gets it once p7 is gone.
    desired.update(ctx, new Map([['p8', peer(8, 9999)]]));
    expect(desired.modelled).toBe(4999);
    desired.update(ctx, new Map([['p7', undefined]]));
    expect(desired.modelled).toBe(4999);
    expect(tables.fdb.getDesired('02:00:00:01:27:0f')?.dst.toString()).toBe('198.18.0.8');
  });

  it('re-evaluates every peer when our own subnet changes (a peer there is left out, the old one routed)', () => {
    const settings: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false };
    const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 };
    const at = (own: string) => modelContext({ settings, uplink, uplinkDev: toLinkName('eth0')!, vxlanDev: toLinkName('flannel.1')!, ownSubnet: Cidr.parse(own)! });
    const peer = (i: number): Peer => ({ key: `p${i}`, subnet: Cidr.parse(`10.5.${i}.0/24`)!, publicIP: Ipv4.parse(`198.18.0.${i}`)!, backendType: 'vxlan', vtepMAC: `02:00:00:00:00:0${i}` });
    const tables = kernelTables();
    const desired = new DesiredPeers(tables);
    const skips = desired.update(at('10.5.9.0/24'), new Map([1, 2, 3].map((i) => [`p${i}`, peer(i)] as const)));
    expect(skips.every((s) => s.reason === undefined)).toBe(true);
    expect(desired.modelled).toBe(3);
    // Our lease moved onto p2's subnet (a stale peer lease): p2 is not routed any more.
    desired.update(at('10.5.2.0/24'), new Map());
    expect(desired.modelled).toBe(2);
    expect(tables.routes.hasDesired('10.5.2.0/24')).toBe(false);
    expect(tables.routes.hasDesired('10.5.1.0/24') && tables.routes.hasDesired('10.5.3.0/24')).toBe(true);
  });
});
