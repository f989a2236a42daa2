// When the agent reconciles: lease changes arriving while a pass runs fold into the next pass
// (a burst costs a handful of passes), each pass hands a backend only the peer changes since
// its last one, and a pass that throws hands the same changes over again when it is retried.
// A pass for one peer's change logs one line: the change with the pass's outcome.
import { describe, expect, it } from 'vitest';
import type { LeaseChange } from '../../src/agent/lease-watch.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { PeerSet } from '../../src/agent/peer-set.js';
import { ReconcileLoop, type Stack } from '../../src/agent/reconcile-loop.js';
import type { Timers } from '../../src/agent/timers.js';
import { Cidr } from '../../src/alloc/cidr.js';
import type { Backend, Peer, PeerDelta, ReconcileReport, UpdateOptions } from '../../src/dataplane/types.js';
import { silentLogger, type Fields, type Logger } from '../../src/log.js';
import { subnetRecord } from '../../src/store/store.js';
import { waitFor } from '../helpers/wait.js';

const PREFIX = '/coreos.com/network/subnets/';
const OWN = { ipv4: Cidr.parse('10.5.0.0/24')! };

function lease(i: number, mac = 1): LeaseChange {
  const name = `10.${6 + (i >> 8)}.${i & 255}.0-24`;
  const value = JSON.stringify({ PublicIP: `198.18.${i >> 8}.${i & 255}`, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: `02:00:00:0${mac}:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` } });
  const record = subnetRecord('default', PREFIX, { key: PREFIX + name, value, modRevision: 100 + i, createRevision: 100 + i, version: 1, leaseId: '7' });
  return { type: 'added', key: record.kv.key, record };
}

/** A backend that records what it is handed; `gate` holds a pass until released, `fail` makes the next one throw. */
class FakeBackend implements Backend {
  calls: { own: string; delta: Map<string, Peer | undefined>; resync: boolean; provisional: boolean }[] = [];
  peers = new Map<string, Peer>();
  gate: Promise<void> | undefined;
  fail = 0;
  async prepare() {
    return { mtu: 1450 };
  }
  async update(own: unknown, delta: PeerDelta, opts: UpdateOptions = {}): Promise<ReconcileReport> {
    this.calls.push({ own: String(own), delta: new Map(delta), resync: opts.resync === true, provisional: opts.provisional === true });
    await this.gate;
    if (this.fail > 0) {
      this.fail--;
      throw new Error('device gone');
    }
    for (const [k, p] of delta) {
      if (p) this.peers.set(k, p);
      else this.peers.delete(k);
    }
    return { operations: delta.size, failures: 0 };
  }
  async reconcile(): Promise<ReconcileReport> {
    throw new Error('not used');
  }
}

/** A logger that keeps its lines (child loggers write into the same list). */
function recordingLogger(lines: { level: string; msg: string; fields: Fields }[]): Logger {
  const at = (level: string) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields: fields ?? {} });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

function setup(lease: { held?: () => typeof OWN | undefined; planned?: () => typeof OWN | undefined } = {}) {
  const backend = new FakeBackend();
  const lines: { level: string; msg: string; fields: Fields }[] = [];
  const stack: Stack = { family: 4, backend, peers: new PeerSet(silentLogger, 'vxlan') };
  const retries: { ms: number; fn: () => void }[] = [];
  const timers = { after: (ms: number, fn: () => void) => retries.push({ ms, fn }) } as unknown as Timers;
  let converged = 0;
  const loop = new ReconcileLoop({
    stacks: [stack],
    held: lease.held ?? (() => OWN),
    ...(lease.planned ? { planned: lease.planned } : {}),
    log: recordingLogger(lines),
    peerLog: recordingLogger(lines),
    metrics: new AgentMetrics({ processMetrics: false }),
    timers,
    onConverged: () => converged++,
  });
  return { backend, loop, retries, converged: () => converged, lines };
}

describe('ReconcileLoop', () => {
  it('folds a burst of 1,000 lease events into a handful of passes, each handed only its changes', async () => {
    const { backend, loop, converged } = setup();
    loop.start();
    let release!: () => void;
    backend.gate = new Promise((r) => (release = r));
    loop.leasesChanged([lease(0)]);
    await waitFor(() => backend.calls.length === 1);
    for (let i = 1; i <= 1000; i++) loop.leasesChanged([lease(i)]);
    release();
    await waitFor(() => backend.peers.size === 1001);
    expect(backend.calls.length).toBeLessThanOrEqual(3);
    expect(backend.calls.map((c) => c.delta.size)).toEqual([1, 1000]);
    expect(converged()).toBe(1);
    // One more change: one peer handed over, not the fleet.
    backend.gate = undefined;
    loop.leasesChanged([lease(5, 2)]);
    await waitFor(() => backend.calls.length === 3);
    expect([...backend.calls[2]!.delta.keys()]).toEqual(['10.6.5.0-24']);
  });

  it('hands the changes of a pass that threw over again at the retry, which re-reads the kernel', async () => {
    const { backend, loop, retries } = setup();
    loop.start();
    backend.fail = 1;
    loop.leasesChanged([lease(1), lease(2)]);
    await waitFor(() => retries.length === 1);
    expect(retries[0]!.ms).toBeLessThan(500);
    loop.leasesChanged([lease(3)]);
    retries[0]!.fn();
    await waitFor(() => backend.peers.size === 3);
    const last = backend.calls.at(-1)!;
    expect([...last.delta.keys()].sort()).toEqual(['10.6.1.0-24', '10.6.2.0-24', '10.6.3.0-24']);
    expect(last.resync).toBe(true);
  });

  it('feeds a large batch (the listing at start) to the peer sets a chunk at a time, as the backend takes them', async () => {
    const { backend, loop } = setup();
    // A backend converging in chunks: records each delta when it takes it.
    const taken: number[] = [];
    backend.update = async (_own, delta, opts = {}) => {
      taken.push(delta.size);
      for (const d of opts.more ?? []) taken.push(d.size);
      return { operations: 0, failures: 0 };
    };
    loop.start();
    loop.leasesChanged(Array.from({ length: 3000 }, (_, i) => lease(i)));
    await waitFor(() => taken.length > 0);
    // Nothing before the pass; then chunks of 128, 256 and 512 leases, each fed when the one before was taken.
    expect(taken).toEqual([0, 128, 256, 512, 512, 512, 512, 512, 56]);
  });

  it('programs peers around the planned subnets before the lease is held: never converged, after-pass work waits for the lease', async () => {
    let held: typeof OWN | undefined;
    const planned = { ipv4: Cidr.parse('10.5.9.0/24')! };
    const { backend, loop, converged } = setup({ held: () => held, planned: () => (held ? undefined : planned) });
    let after = 0;
    loop.whenPassed(() => after++);
    loop.start();
    loop.leasesChanged([lease(1), lease(2)]);
    await waitFor(() => backend.peers.size === 2);
    expect(backend.calls.map((c) => [c.own, c.provisional])).toEqual([['10.5.9.0/24', true]]);
    expect([converged(), after]).toEqual([0, 0]);
    // The lease is ours (another subnet than planned): the next pass is the lease's own.
    held = OWN;
    loop.schedule('event');
    await waitFor(() => converged() === 1);
    expect(backend.calls.map((c) => [c.own, c.provisional])).toEqual([['10.5.9.0/24', true], ['10.5.0.0/24', false]]);
    expect(after).toBe(1);
  });

  it('runs no pass for changes of our own key alone (its renewals), and one when a peer changes with it', async () => {
    const { backend, loop } = setup();
    loop.start();
    const own = lease(7) as Extract<LeaseChange, { type: 'added' }>;
    loop.setOwnKey(own.key);
    loop.leasesChanged([lease(1)]);
    await waitFor(() => backend.calls.length === 1);
    const renewal: LeaseChange = { type: 'updated', key: own.key, record: own.record, previous: own.record };
    // A pass, were one scheduled, would have called the backend by the second turn of the
    // event loop (passes start from setImmediate).
    const turns = async () => {
      for (let i = 0; i < 3; i++) await new Promise<void>((r) => setImmediate(r));
    };
    loop.leasesChanged([own]);
    await turns();
    loop.leasesChanged([renewal]);
    await turns();
    loop.leasesChanged([lease(2), renewal]);
    await waitFor(() => backend.peers.size === 2);
    // The own key's changes reached the peer set (never as a peer) and cost no pass of their own.
    expect(backend.calls.map((c) => [...c.delta.keys()])).toEqual([['10.6.1.0-24'], ['10.6.2.0-24']]);
    expect(backend.peers.has('10.6.7.0-24')).toBe(false);
  });

  it('hands over in the next pass what a backend did not take of a large batch', async () => {
    const { backend, loop } = setup();
    loop.start();
    loop.leasesChanged(Array.from({ length: 3000 }, (_, i) => lease(i)));
    await waitFor(() => backend.peers.size === 3000);
    expect(backend.calls.map((c) => c.delta.size)).toEqual([0, 3000]);
  });

  it("logs one peer's change as one line with the pass's outcome; several as their lines and a converged line", async () => {
    const { backend, loop, lines } = setup();
    loop.start();
    loop.leasesChanged([lease(1)]);
    await waitFor(() => backend.peers.size === 1);
    await waitFor(() => lines.length > 0);
    expect(lines).toEqual([
      {
        level: 'info',
        msg: 'peer added',
        fields: expect.objectContaining({ key: PREFIX + '10.6.1.0-24', publicIP: '198.18.0.1', vtepMAC: '02:00:00:01:00:01', operations: 1, failures: 0, trigger: 'event' }),
      },
    ]);

    lines.length = 0;
    loop.leasesChanged([lease(2), lease(3)]);
    await waitFor(() => lines.some((l) => l.msg === 'dataplane converged'));
    expect(lines.map((l) => l.msg)).toEqual(['peer added', 'peer added', 'dataplane converged']);
    expect(lines[0]!.fields.operations).toBeUndefined();
    expect(lines[2]!.fields).toMatchObject({ operations: 2, failures: 0 });
  });

  it("logs a peer's change before the failure of its pass", async () => {
    const { backend, loop, lines, retries } = setup();
    loop.start();
    backend.fail = 1;
    loop.leasesChanged([lease(1)]);
    await waitFor(() => retries.length === 1);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['info', 'peer added'],
      ['error', 'dataplane reconcile failed; will retry'],
    ]);
    expect(lines[0]!.fields.operations).toBeUndefined();
  });
});
