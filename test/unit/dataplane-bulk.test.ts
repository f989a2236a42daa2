// A bulk pass (the first at start: thousands of peers) is modelled and sent chunk by chunk,
// the kernel working on one chunk while the next is modelled (converger.ts, convergeInChunks).
// It must land where one model-then-converge pass lands, from an empty kernel, from a kernel
// that already holds the entries (a restart: nothing re-applied, nothing removed on the way),
// with stale entries (removed, once every peer is modelled), with peers that conflict across
// chunks, and when the kernel refuses some operations (read again, retried).
import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import type { ApplyResult, KernelChannel } from '../../src/dataplane/channel.js';
import { PeerSync } from '../../src/dataplane/converger.js';
import { desiredState, emptyState, modelContext, toLinkName, type KernelState, type ModelContext } from '../../src/dataplane/model.js';
import { feedSink, type KernelSink, type ObserveTargets } from '../../src/dataplane/observe.js';
import { applyToState, plan, type Op } from '../../src/dataplane/planner.js';
import { SkipReporter } from '../../src/dataplane/skips.js';
import type { BackendSettings, Peer, PeerDelta } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';

/** A kernel in memory. Answers a tick later (as the bulk thread does), in call order; can refuse. */
class FakeKernel implements KernelChannel {
  readonly kind = 'netlink';
  state: KernelState = emptyState();
  /** Every operation applied, in order, with whether it went through the bulk path. */
  readonly log: { op: Op; bulk: boolean }[] = [];
  /** Operations to refuse (each once), by `kind action key`. */
  refuseOnce = new Set<string>();
  private queue: Promise<unknown> = Promise.resolve();

  apply(ops: Op[], opts: { bulk?: boolean } = {}): Promise<ApplyResult> {
    const run = this.queue.then(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      const ok = ops.map((op) => !this.refuseOnce.delete(`${op.kind} ${op.action} ${op.key}`));
      applyToState(this.state, ops, ok);
      ops.forEach((op, i) => ok[i] && this.log.push({ op, bulk: opts.bulk === true }));
      return { ok, failures: ok.filter((x) => !x).length, runs: 0, errors: [], errno: ok.map((x) => (x ? 0 : 22)) };
    });
    this.queue = run;
    return run;
  }

  /** Runs after the dump's copy is taken and before it is answered (a change racing the read). */
  duringObserve: (() => void) | undefined;

  async observe(): Promise<KernelState> {
    const dump = { routes: new Map(this.state.routes), neighs: new Map(this.state.neighs), fdb: new Map(this.state.fdb), foreign: new Map() };
    await new Promise((resolve) => setImmediate(resolve));
    this.duringObserve?.();
    this.duringObserve = undefined;
    return dump;
  }

  /** As the netlink channel: the dump handed over entry by entry (after the racing change, as observe()). */
  async observeInto(targets: ObserveTargets, sink: KernelSink): Promise<void> {
    feedSink(await this.observe(), sink);
  }

  prepareBulk(): void {}

  async readDevice(): Promise<undefined> {
    return undefined;
  }

  async changeDevice(): Promise<void> {}
}

const settings: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: Cidr.parse('10.0.0.0/8')! };
const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 };
const ctx: ModelContext = modelContext({ settings, uplink, uplinkDev: toLinkName('eth0')!, vxlanDev: toLinkName('flannel.1')!, ownSubnet: Cidr.parse('10.0.0.0/24')! });
const hex = (n: number) => n.toString(16).padStart(2, '0');

/** n peers; every 97th shares its VTEP MAC with the peer 1,500 places before it (another chunk), the older winning. */
function peers(n: number, macVariant = 0): Peer[] {
  return Array.from({ length: n }, (_, i) => {
    const m = i % 97 === 0 && i >= 1500 ? i - 1500 : i;
    return {
      key: `10.${1 + (i >> 8)}.${i & 255}.0-24`,
      subnet: Cidr.parse(`10.${1 + (i >> 8)}.${i & 255}.0/24`)!,
      publicIP: Ipv4.parse(`198.18.${i >> 8}.${i & 255}`)!,
      backendType: 'vxlan',
      vtepMAC: `02:00:0${macVariant}:00:${hex(m >> 8)}:${hex(m & 255)}`,
      vni: 1,
      since: 100 + i,
    };
  });
}

const deltaOf = (ps: Peer[]): PeerDelta => new Map(ps.map((p) => [p.key, p]));

function sync(kernel: FakeKernel): PeerSync {
  return new PeerSync(kernel, { vxlanDev: toLinkName('flannel.1')!, uplinkDev: toLinkName('eth0')!, family: 4 }, silentLogger, new SkipReporter(silentLogger));
}

function expectKernelHolds(kernel: FakeKernel, want: KernelState): void {
  for (const kind of ['routes', 'neighs', 'fdb'] as const) expect([...kernel.state[kind].keys()].sort(), kind).toEqual([...want[kind].keys()].sort());
  expect(plan(want, kernel.state), 'values').toEqual([]);
}

describe('bulk pass in chunks', () => {
  it('is used for large deltas only', () => {
    expect(PeerSync.isBulk(deltaOf(peers(100)))).toBe(false);
    expect(PeerSync.isBulk(deltaOf(peers(3000)))).toBe(true);
  });

  it('lands on the desired state from an empty kernel, through the bulk path, conflicts across chunks settled as one pass would', async () => {
    const ps = peers(3000);
    const kernel = new FakeKernel();
    const { failures, report } = await sync(kernel).convergeBulk(ctx, deltaOf(ps), true, performance.now());
    const want = desiredState({ ...ctx, peers: ps }).state;
    expect(failures).toBe(0);
    expectKernelHolds(kernel, want);
    expect(want.fdb.size).toBeLessThan(3000); // the shared MACs: some peers lost theirs
    expect(report.operations).toBe(kernel.log.length);
    // Nothing sent twice: a chunk's entries leave the pending sets when they are sent.
    expect(new Set(kernel.log.map((e) => `${e.op.kind} ${e.op.key}`)).size).toBe(kernel.log.length);
    // Every route after its own neighbour and FDB entry; all but the closing pass's few in bulk.
    const at = new Map(kernel.log.map((e, i) => [`${e.op.kind} ${e.op.key}`, i]));
    for (const [key, r] of want.routes) {
      const gw = r.via!.toString();
      expect(at.get(`route ${key}`)!).toBeGreaterThan(at.get(`neigh ${gw}`)!);
    }
    expect(kernel.log.filter((e) => e.bulk).length).toBeGreaterThan(kernel.log.length * 0.9);
  });

  it('on a restart re-applies nothing and removes nothing the peers want; stale entries go, changed ones are replaced', async () => {
    const ps = peers(3000);
    const kernel = new FakeKernel();
    await sync(kernel).convergeBulk(ctx, deltaOf(ps), true, performance.now());
    // The restart: a new process (new tables) over the same kernel, which also holds a stale
    // peer's entries; one peer has a new VTEP MAC.
    const stale = peers(3001)[3000]!;
    const staleWant = desiredState({ ...ctx, peers: [stale] }).state;
    for (const kind of ['routes', 'neighs', 'fdb'] as const) for (const [k, v] of staleWant[kind]) (kernel.state[kind] as Map<string, unknown>).set(k, v);
    const changed = { ...ps[10]!, vtepMAC: '02:00:09:00:00:0a' };
    const now = ps.map((p, i) => (i === 10 ? changed : p));
    kernel.log.length = 0;
    const { failures } = await sync(kernel).convergeBulk(ctx, deltaOf(now), true, performance.now());
    expect(failures).toBe(0);
    expectKernelHolds(kernel, desiredState({ ...ctx, peers: now }).state);
    expect(kernel.log.map((e) => `${e.op.kind} ${e.op.action} ${e.op.key}`).sort()).toEqual(
      ['fdb del 02:00:00:00:00:0a', 'fdb replace 02:00:09:00:00:0a', 'neigh replace 10.1.10.0', ...[...staleWant.routes.keys()].map((k) => `route del ${k}`), ...[...staleWant.neighs.keys()].map((k) => `neigh del ${k}`), ...[...staleWant.fdb.keys()].map((k) => `fdb del ${k}`)].sort(),
    );
  });

  it('reads the kernel again and retries what it refused', async () => {
    const ps = peers(3000);
    const kernel = new FakeKernel();
    kernel.refuseOnce = new Set(['route replace 10.2.5.0/24', 'neigh replace 10.9.0.0', 'fdb replace 02:00:00:00:0b:b7']);
    const { failures, report } = await sync(kernel).convergeBulk(ctx, deltaOf(ps), false, performance.now());
    expect(kernel.refuseOnce.size).toBe(0);
    expect(failures).toBe(0);
    expect(report.failures).toBe(0);
    expectKernelHolds(kernel, desiredState({ ...ctx, peers: ps }).state);
  });

  it('repairs an entry deleted while the kernel was being read (its notification came during the dump)', async () => {
    const ps = peers(10);
    const kernel = new FakeKernel();
    const s = sync(kernel);
    s.model(ctx, deltaOf(ps));
    await s.converge(true, performance.now());
    const [key, route] = [...kernel.state.routes][0]!;
    kernel.duringObserve = () => {
      kernel.state.routes.delete(key);
      expect(s.converger.noteKernelEvent({ kind: 'route', action: 'del', route, table: 254, type: 1 })).toEqual({ kind: 'none' });
    };
    const { report } = await s.converge(true, performance.now());
    expect(report.operations).toBe(1);
    expect(kernel.state.routes.has(key)).toBe(true);
  });
});
