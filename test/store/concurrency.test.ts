// Concurrency against a real etcd, checked at every moment rather than only at the end:
// the 250-way join race while agents restart, with a checker listing the subnets prefix
// every few milliseconds; and `weft apply` runs racing for the same subnet.
//
// Two racing applies of the same Network are covered in test/cli/apply.test.ts ("lets exactly
// one of two racing applies win"); here the race is over one subnet, between objects.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import type { AcquireResult } from '../../src/agent/acquire.js';
import { decodeLease } from '../../src/api/lease.js';
import { Store } from '../../src/store/store.js';
import { etcdFlags, weft } from '../helpers/cli.js';
import { acquireAs, etcdFixture, valueFor } from '../helpers/acquirers.js';

const require = createRequire(import.meta.url);
const JOINERS = 250;
const RESTARTERS = 20;
const ROUNDS = 2;

const fx = etcdFixture('conc');

/**
 * The checker, in a worker thread so that it keeps its pace while the 250 acquirers saturate
 * this thread's event loop. It lists the subnets prefix back to back, 2 ms apart; each list is
 * one etcd revision, so a violation it sees existed at that moment. Its own key parsing is
 * deliberately independent of weft's code (it is the oracle).
 */
const CHECKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { Etcd3 } = require(workerData.etcd3);
const client = new Etcd3({ hosts: [workerData.endpoint] });
const prefix = workerData.prefix;
const ip = (s) => s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
let stopped = false;
parentPort.on('message', () => (stopped = true));
(async () => {
  const violations = [];
  let lists = 0, maxKeys = 0;
  while (!stopped) {
    const res = await client.kv.range({ key: Buffer.from(prefix), range_end: Buffer.from(prefix.slice(0, -1) + '0') });
    if (lists++ === 0) parentPort.postMessage('ready');
    maxKeys = Math.max(maxKeys, res.kvs.length);
    const rev = res.header.revision;
    const ranges = [];
    const byNode = new Map();
    for (const kv of res.kvs) {
      const name = kv.key.toString().slice(prefix.length);
      const m = /^(\\d+\\.\\d+\\.\\d+\\.\\d+)-(\\d+)$/.exec(name);
      if (!m) { violations.push('rev ' + rev + ': unparsable key ' + name); continue; }
      const first = ip(m[1]);
      ranges.push([first, first + 2 ** (32 - Number(m[2])) - 1, name]);
      let node;
      try { node = JSON.parse(kv.value.toString()).NodeName; } catch { violations.push('rev ' + rev + ': bad value at ' + name); }
      if (node) byNode.set(node, [...(byNode.get(node) || []), name]);
    }
    ranges.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < ranges.length; i++) {
      if (ranges[i][0] <= ranges[i - 1][1]) violations.push('rev ' + rev + ': ' + ranges[i - 1][2] + ' and ' + ranges[i][2] + ' overlap');
    }
    for (const [node, keys] of byNode) if (keys.length > 1) violations.push('rev ' + rev + ': ' + node + ' holds ' + keys.join(', '));
    await new Promise((r) => setTimeout(r, 2));
  }
  client.close();
  parentPort.postMessage({ violations: violations.slice(0, 20), lists, maxKeys });
})().catch((err) => parentPort.postMessage({ violations: ['checker failed: ' + err.message], lists: 0, maxKeys: 0 }));
`;

interface CheckerReport {
  violations: string[];
  lists: number;
  maxKeys: number;
}

function startChecker(prefix: string) {
  const worker = new Worker(CHECKER, {
    eval: true,
    workerData: { endpoint: fx.etcd.endpoint, prefix: `${prefix}/subnets/`, etcd3: require.resolve('etcd3') },
  });
  let ready!: () => void;
  const listing = new Promise<void>((r) => (ready = r));
  const report = new Promise<CheckerReport>((resolve, reject) => {
    worker.on('message', (m: 'ready' | CheckerReport) => (m === 'ready' ? ready() : resolve(m)));
    worker.once('error', reject);
  });
  let stopping: Promise<CheckerReport> | undefined;
  return {
    /** Resolves once the first listing is done, so the race is watched from its start. */
    listing: Promise.race([listing, report.then(() => undefined)]),
    stop(): Promise<CheckerReport> {
      if (!stopping) {
        worker.postMessage('stop');
        stopping = report.finally(() => worker.terminate());
      }
      return stopping;
    },
  };
}

function shuffledIndices(count: number, pick: number): number[] {
  const all = Array.from({ length: count }, (_, i) => i);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, pick);
}

describe('the join race under restarts', () => {
  it('has a checker that does see overlapping subnets and a node holding two keys', async () => {
    const { prefix } = await fx.network({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
    const v = (node: string) => `{"PublicIP":"192.0.2.1","PublicIPv6":null,"NodeName":"${node}"}`;
    await fx.admin.client.put(`${prefix}/subnets/10.5.1.0-24`).value(v('x'));
    await fx.admin.client.put(`${prefix}/subnets/10.5.1.128-25`).value(v('y'));
    await fx.admin.client.put(`${prefix}/subnets/10.5.2.0-24`).value(v('x'));
    const checker = startChecker(prefix);
    await checker.listing;
    const { violations } = await checker.stop();
    expect(violations.length).toBeGreaterThanOrEqual(2);
    expect(violations[0]).toMatch(/^rev \d+: 10\.5\.1\.0-24 and 10\.5\.1\.128-25 overlap$/);
    expect(violations[1]).toMatch(/^rev \d+: x holds 10\.5\.1\.0-24, 10\.5\.2\.0-24$/);
  });

  it(`${JOINERS} joiners, ${RESTARTERS} of them restarting mid-race, ${ROUNDS} rounds: never a doubled subnet or node, and all converge`, async () => {
    for (let round = 1; round <= ROUNDS; round++) {
      const { prefix, config } = await fx.network({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
      const clients = Array.from({ length: JOINERS }, () => Store.connect({ endpoints: [fx.etcd.endpoint], prefix }));
      const checker = startChecker(prefix);
      await checker.listing;
      const started = Date.now();
      try {
        // Each node's current agent run; a restart waits for the previous run to be over
        // (a restarted process does not overlap its predecessor), then starts a new one.
        const runs: Promise<AcquireResult>[] = clients.map((s, i) => acquireAs(s, config, i));
        const first = [...runs];
        const restarted = shuffledIndices(JOINERS, RESTARTERS);
        const restarts = restarted.map(async (i) => {
          const subnets: string[] = [];
          for (let k = 0; k < 2; k++) {
            await new Promise((r) => setTimeout(r, Math.random() * 400));
            const before = await runs[i]!;
            subnets.push(before.held.subnets.ipv4!.toString());
            runs[i] = acquireAs(clients[i]!, config, i, before.held.subnets);
          }
          const last = await runs[i]!;
          subnets.push(last.held.subnets.ipv4!.toString());
          return { i, subnets, how: last.how };
        });
        const restartResults = await Promise.all(restarts);
        await Promise.all(first);
        const results = await Promise.all(runs);
        const elapsed = Date.now() - started;
        const { lists, maxKeys, violations } = await checker.stop();

        expect(violations).toEqual([]);
        expect(lists).toBeGreaterThan(50);
        // Every node holds one subnet; a restart keeps it (matched by node name).
        expect(new Set(results.map((r) => r.held.subnets.ipv4!.toString())).size).toBe(JOINERS);
        for (const r of restartResults) {
          expect(new Set(r.subnets).size, `node-${r.i} moved: ${r.subnets.join(' -> ')}`).toBe(1);
          expect(r.how).toBe('reused lease (matched by node-name)');
        }
        const { records } = await new Store(fx.admin.client, prefix, [fx.etcd.endpoint]).listSubnets('default');
        expect(records).toHaveLength(JOINERS);
        expect(maxKeys).toBeLessThanOrEqual(JOINERS);
        const owners = records.map((r) => (r.lease.ok ? r.lease.value.nodeName : r.kv.key)).sort();
        expect(owners).toEqual(Array.from({ length: JOINERS }, (_, i) => `node-${i}`).sort());
        // The held view of each node is what etcd has.
        for (const [i, r] of results.entries()) {
          const kv = records.find((x) => x.kv.key === r.held.key)!;
          expect(decodeLease(kv.kv.value)).toEqual({ ok: true, value: valueFor(i) });
          expect(kv.kv.leaseId).toBe(r.held.leaseId);
        }
        const retries = results.reduce((s, r) => s + r.attempts - 1, 0);
        console.log(
          `round ${round}: ${JOINERS} joined and ${RESTARTERS} restarted twice in ${elapsed} ms; ` +
            `${lists} listings checked (one every ${(elapsed / lists).toFixed(1)} ms), 0 doubled subnets or nodes; ${retries} lost races retried`,
        );
      } finally {
        await checker.stop();
        clients.forEach((c) => c.close());
      }
    }
  });
});

describe('racing weft apply runs', () => {
  const subnet = (name: string, cidr: string, node: string) =>
    `apiVersion: weft.io/v1alpha1\nkind: Subnet\nmetadata:\n  name: ${name}\nspec:\n  network: default\n  cidr: ${cidr}\n  node: ${node}\n`;

  it('two Subnets claiming one CIDR at once: one is created, the other refused, nothing half-written', async () => {
    const prefix = `/conc${process.pid}-apply/network`;
    const flags = etcdFlags(fx.etcd.endpoint, prefix);
    const created = await weft(['apply', '-f', '-', ...flags], {
      stdin: 'apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata: {name: default}\nspec: {cidr: 10.5.0.0/16, backend: {type: vxlan}}\n',
    });
    expect(created.code).toBe(0);
    const store = new Store(fx.admin.client, prefix, [fx.etcd.endpoint]);
    const rounds = 10;
    const wins = { a: 0, b: 0 };
    for (let i = 1; i <= rounds; i++) {
      const cidr = `10.5.${100 + i}.0/24`;
      const [a, b] = await Promise.all([
        weft(['apply', '-f', '-', ...flags], { stdin: subnet(`a${i}`, cidr, `node-a${i}`) }),
        weft(['apply', '-f', '-', ...flags], { stdin: subnet(`b${i}`, cidr, `node-b${i}`) }),
      ]);
      const outcomes = [a, b].map((r) => r.code);
      expect(outcomes.sort()).toEqual([0, 1]);
      const [winner, loser, w, l] = a.code === 0 ? [a, b, 'a', 'b'] : [b, a, 'b', 'a'];
      wins[w as 'a' | 'b']++;
      expect(winner.stdout).toBe(`subnet.weft.io/${w}${i} created\n`);
      expect(loser.stdout).toBe('');
      expect(loser.stderr).toMatch(
        new RegExp(`(changed by someone else|overlaps subnet/${w}${i}|the store changed while applying)`),
      );
      // Exactly the winner's reservation and metadata; no trace of the loser.
      const key = `${prefix}/subnets/${Cidr.parse(cidr)!.toKey()}`;
      expect((await store.get(key))!.value).toBe(`{"PublicIP":"255.255.255.255","PublicIPv6":null,"NodeName":"node-${w}${i}"}`);
      expect(await store.get(`${prefix}/_weft/subnets/${w}${i}`)).toBeDefined();
      expect(await store.get(`${prefix}/_weft/subnets/${l}${i}`)).toBeUndefined();
    }
    const { kvs } = await store.list(`${prefix}/subnets/`);
    expect(kvs).toHaveLength(rounds);
    console.log(`racing Subnet applies: ${rounds} rounds, exactly one winner each (a ${wins.a}, b ${wins.b})`);
  });
});
