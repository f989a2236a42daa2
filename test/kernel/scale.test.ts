// 1000 peers: the kernel work happens in a handful of batch processes, not one per entry.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Peer } from '../../src/dataplane/types.js';
import { cidr, createHost, ip, OWN, VXLAN, type Host } from './fixture.js';

const N = 1000;
const hex = (v: number) => v.toString(16).padStart(2, '0');

/** Peer i: subnet 10.(i/256).(i%256).0/24 (skipping 10.5.x), public IP 198.18.x.y, a unique MAC. */
function peer(i: number, macSalt = 0): Peer {
  const hi = 10 + (i >> 8);
  const lo = i & 255;
  return {
    key: `10.${hi}.${lo}.0-24`,
    subnet: cidr(`10.${hi}.${lo}.0/24`),
    publicIP: ip(`198.18.${i >> 8}.${lo}`),
    backendType: 'vxlan',
    vtepMAC: `02:${hex(macSalt)}:00:00:${hex(i >> 8)}:${hex(lo)}`,
    vni: 1,
  };
}

let h: Host;
beforeAll(async () => {
  h = await createHost('scale');
});
afterAll(async () => {
  await h?.ns.delete();
});

describe('vxlan backend at 1000 peers (kernel)', () => {
  it('programs, changes and removes 1000 peers in a few batch processes each', async () => {
    const b = h.backend({ ...VXLAN, network: cidr('10.0.0.0/8') });
    await b.prepare();
    const peers = Array.from({ length: N }, (_, i) => peer(i));

    let runs = h.ns.runner.runs;
    const full = await b.reconcile(OWN, peers);
    expect([full.operations, full.failures]).toEqual([3 * N, 0]);
    // Device read, address, 4 dumps in parallel, 3 batches (neigh, fdb, route).
    expect(h.ns.runner.runs - runs).toBeLessThanOrEqual(9);
    const count = async () => [
      (await h.routes('flannel.1')).length,
      (await h.neighs('flannel.1')).length,
      (await h.fdb('flannel.1')).length,
    ];
    expect(await count()).toEqual([N, N, N]);

    // Every MAC changes at once: neighbours and FDB replaced, old FDB entries deleted.
    runs = h.ns.runner.runs;
    const changed = await b.reconcile(OWN, Array.from({ length: N }, (_, i) => peer(i, 1)));
    expect([changed.operations, changed.failures]).toEqual([3 * N, 0]);
    expect(h.ns.runner.runs - runs).toBe(2);
    expect(await count()).toEqual([N, N, N]);
    expect((await h.neighs('flannel.1')).every((n) => / 02:01:/.test(n))).toBe(true);

    // A resync of a converged kernel reads it back and changes nothing.
    const resync = await b.reconcile(OWN, Array.from({ length: N }, (_, i) => peer(i, 1)), { resync: true });
    expect([resync.operations, resync.failures]).toEqual([0, 0]);

    runs = h.ns.runner.runs;
    const gone = await b.reconcile(OWN, []);
    expect([gone.operations, gone.failures]).toEqual([3 * N, 0]);
    expect(h.ns.runner.runs - runs).toBe(3);
    expect(await count()).toEqual([0, 0, 0]);
  });
});
