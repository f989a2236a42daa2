// The incremental path (DesiredTracker + planning only the touched keys) must always reach the
// state a from-scratch computation gives, over random sequences of adds, MAC changes,
// removals, duplicate MACs, bad MACs and other backends. Pure: the "kernel" is the believed
// state updated with applyToState.
import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { DesiredTracker } from '../../src/dataplane/desired.js';
import { desiredState, emptyState, modelContext, toLinkName } from '../../src/dataplane/model.js';
import { applyToState, plan } from '../../src/dataplane/planner.js';
import type { BackendSettings, Peer } from '../../src/dataplane/types.js';

function run(directRouting: boolean, rounds: number): number {
  let seed = directRouting ? 7 : 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 16) % n;
  };
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const settings: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting, gbp: false, network: Cidr.parse('10.0.0.0/8')! };
  const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 };
  const ctx = modelContext({ settings, uplink, uplinkDev: toLinkName('eth0')!, vxlanDev: toLinkName('flannel.1')!, ownSubnet: Cidr.parse('10.0.0.0/24')! });
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
    };
  };
  const peers = new Map<number, Peer>();
  const tracker = new DesiredTracker();
  const kernel = emptyState();
  let incremental = 0;
  for (let round = 0; round < rounds; round++) {
    const dups = round < rounds / 2; // first half: shared VTEP MACs force full recomputes
    for (let c = 1 + rand(3); c > 0; c--) {
      const i = rand(60);
      if (peers.has(i) && rand(3) === 0) peers.delete(i);
      else peers.set(i, makePeer(i, dups));
    }
    const list = [...peers.values()];
    const d = tracker.update(ctx, list, round % 500 === 0);
    if (!d.full) incremental++;
    const ops = plan(d.state, kernel, d.touched);
    applyToState(kernel, ops, ops.map(() => true));
    const want = desiredState({ ...ctx, peers: list }).state;
    for (const kind of ['routes', 'neighs', 'fdb'] as const) {
      expect([...kernel[kind].keys()].sort(), `round ${round}: ${kind}`).toEqual([...want[kind].keys()].sort());
    }
    expect(plan(want, kernel), `round ${round}: values differ`).toEqual([]);
  }
  return incremental;
}

describe('incremental dataplane planning', () => {
  it.each([false, true])('matches a from-scratch plan after every random change (directRouting %s)', (directRouting) => {
    const incremental = run(directRouting, 2000);
    expect(incremental).toBeGreaterThan(500); // the incremental path was really exercised
  });
});
