// The periodic resync reads the kernel into the tables in place (Converger with a scripted
// channel): a notification that arrives while the dumps are being read is applied once they
// are in (the dump's copy may predate it), and a dump that fails half-way makes the next pass
// read the kernel again instead of trusting views it left half-updated. Pure.
import { describe, expect, it } from 'vitest';
import type { ApplyResult, KernelChannel, KernelEvent } from '../../src/dataplane/channel.js';
import { Converger } from '../../src/dataplane/converger.js';
import { toLinkName, WEFT_ROUTE_PROTO, type LinkName, type RouteEntry } from '../../src/dataplane/model.js';
import type { KernelSink, ObserveTargets } from '../../src/dataplane/observe.js';
import { kernelTables } from '../../src/dataplane/planner.js';
import type { Op } from '../../src/dataplane/planner.js';
import { RT_TABLE_MAIN, RTN_UNICAST } from '../../src/dataplane/rtnl.js';
import { createLogger } from '../../src/log.js';
import { cidr, ip } from '../helpers/peers.js';

const fl = toLinkName('flannel.1') as LinkName;
const targets: ObserveTargets = { vxlanDev: fl };
const route = (n: number): RouteEntry => ({ dst: cidr(`10.5.${n}.0/24`), via: ip(`10.5.${n}.0`), dev: fl, onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0 });

/** A kernel holding routes 1..3; `during` runs between the first and the second route of each dump. */
class ScriptedChannel implements KernelChannel {
  readonly kind = 'netlink';
  dumps = 0;
  applied: Op[][] = [];
  during: (() => void) | undefined;
  fail = false;
  async observe(): Promise<never> {
    throw new Error('not used: the converger reads in place');
  }
  async observeInto(_t: ObserveTargets, sink: KernelSink): Promise<void> {
    this.dumps++;
    sink.route(route(1));
    await Promise.resolve();
    this.during?.();
    if (this.fail) throw new Error('ENOBUFS');
    sink.route(route(2));
    sink.route(route(3));
  }
  async apply(ops: Op[]): Promise<ApplyResult> {
    this.applied.push(ops);
    return { ok: ops.map(() => true), failures: 0, runs: 0, errors: [], errno: ops.map(() => 0) };
  }
  async readDevice(): Promise<undefined> {
    return undefined;
  }
  async changeDevice(): Promise<void> {}
}

function setUp() {
  const channel = new ScriptedChannel();
  const tables = kernelTables();
  for (const n of [1, 2, 3]) tables.routes.setDesired(`10.5.${n}.0/24`, route(n));
  const converger = new Converger(channel, targets, createLogger({ level: 'error' }), tables);
  return { channel, tables, converger };
}

const deleted = (n: number): KernelEvent => ({ kind: 'route', action: 'del', route: route(n), table: RT_TABLE_MAIN, type: RTN_UNICAST });

describe('the periodic resync, read in place', () => {
  it('trusts the views after a clean dump: the next pass reads nothing', async () => {
    const { channel, converger } = setUp();
    expect((await converger.converge(true)).operations).toBe(0);
    expect((await converger.converge(false)).operations).toBe(0);
    expect(channel.dumps).toBe(1);
  });

  it('applies drift reported while the dumps were being read once they are in', async () => {
    const { channel, converger } = setUp();
    await converger.converge(true);
    // Route 1 is deleted by hand after the dump passed it: its notification, held while the
    // dump is read, then takes it out of the view, and this pass puts it back.
    channel.during = () => expect(converger.noteKernelEvent(deleted(1)).kind).toBe('none');
    const r = await converger.converge(true);
    expect(r.operations).toBe(1);
    expect(channel.applied.at(-1)!.map((op) => `${op.kind} ${op.action} ${op.key}`)).toEqual(['route replace 10.5.1.0/24']);
    channel.during = undefined;
    await converger.converge(false);
    expect(channel.dumps).toBe(2);
  });

  it('reads the kernel again after a dump that failed half-way', async () => {
    const { channel, converger } = setUp();
    await converger.converge(true);
    channel.fail = true;
    await expect(converger.converge(true)).rejects.toThrow('ENOBUFS');
    channel.fail = false;
    await converger.converge(false);
    expect(channel.dumps).toBe(3);
  });
});
