// Bench 3, propagation: 20 agents in 20 host namespaces; a lease is added 50 times; how long
// until every host's kernel has the route (`ip monitor route` in each namespace), against the
// etcd put -> watch event latency of a watcher in the same run.
//
//   node bench/propagation.mjs [hosts] [joins]      (default 20 50)
import { msSince, percentile, printResult, printTable, procCounts, round, sleep, withTestbed } from './lib.mjs';

const HOSTS = Number(process.argv[2] ?? 20);
const JOINS = Number(process.argv[3] ?? 50);

const r = await withTestbed(async (tb, worker) => {
  const hosts = [];
  for (let i = 1; i <= HOSTS; i++) hosts.push(await tb.addHost(i));
  const agents = hosts.map((h) => tb.startAgent(h));
  const t0 = process.hrtime.bigint();
  // Every agent holds a lease and routes to every other host.
  for (;;) {
    const ready = hosts.filter((h, k) => procCounts(agents[k].pid).routes >= HOSTS - 1).length;
    if (ready === HOSTS) break;
    const dead = agents.find((a) => a.status);
    if (dead) throw new Error(`an agent exited: ${JSON.stringify(dead.status)}`);
    if (msSince(t0) > 120_000) throw new Error(`only ${ready} of ${HOSTS} hosts converged`);
    await sleep(200);
  }
  const meshMs = msSince(t0);
  for (const h of hosts) await worker.call('startMonitor', { ns: h.ns, kinds: ['route'] });
  const all = [];
  const watch = [];
  const perHost = [];
  for (let j = 0; j < JOINS + 2; j++) {
    const e = await worker.call('event', { kind: 'add', i: 30000 + j, hosts: hosts.map((h) => h.ns), kinds: ['route'] });
    if (j < 2) continue; // warm-up
    const lat = e.tKernel.map((t) => msSince(e.tPut, t));
    all.push(Math.max(...lat));
    perHost.push(...lat);
    watch.push(msSince(e.tPut, e.tWatch));
  }
  return { meshMs, all, watch, perHost };
});

printTable(`Propagation: ${JOINS} lease adds, ${HOSTS} agents (ms)`, [
  ['measure', 'p50', 'p99', 'max'],
  ['put -> route on all hosts', round(percentile(r.all, 50)), round(percentile(r.all, 99)), round(Math.max(...r.all))],
  ['put -> route, per host', round(percentile(r.perHost, 50)), round(percentile(r.perHost, 99)), round(Math.max(...r.perHost))],
  ['put -> watch event (baseline)', round(percentile(r.watch, 50)), round(percentile(r.watch, 99)), round(Math.max(...r.watch))],
]);
console.log(`  (${HOSTS} agents started and fully meshed in ${round(r.meshMs / 1000, 1)} s on this machine)`);
printResult('propagation', {
  hosts: HOSTS,
  joins: JOINS,
  allHostsP50Ms: round(percentile(r.all, 50)),
  allHostsP99Ms: round(percentile(r.all, 99)),
  perHostP50Ms: round(percentile(r.perHost, 50)),
  perHostP99Ms: round(percentile(r.perHost, 99)),
  watchP50Ms: round(percentile(r.watch, 50)),
  watchP99Ms: round(percentile(r.watch, 99)),
  meshMs: round(r.meshMs, 0),
});
