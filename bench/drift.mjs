// Bench: drift repair. One agent with N peers programmed and a resync interval of an hour (so
// only the kernel's notifications can start a repair). A route, then a neighbour, deleted by
// hand (K times each, one at a time): the time from the kernel's "Deleted" notification to the
// entry's return, both read from `ip monitor` in the host namespace. Then the device itself
// deleted: the time until all N routes, neighbours and FDB entries are back.
//
//   node bench/drift.mjs [N] [K]        (default 1000 30)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { subnetOf } from './leases.mjs';
import { cpuBetween, msSince, now, percentile, printResult, printTable, procUsage, round, startAgent, waitForEntries, withTestbed } from './lib.mjs';

const N = Number(process.argv[2] ?? 1000);
const K = Number(process.argv[3] ?? 30);

/** `ip -n NS monitor KIND`, lines timestamped; wait(pred) resolves with the first matching line's time. */
function monitor(ns, kind) {
  const proc = spawn('ip', ['-n', ns, 'monitor', kind], { stdio: ['ignore', 'pipe', 'ignore'] });
  let lines = [];
  const waiters = new Set();
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push({ t: now(), line });
    for (const w of waiters) w();
  });
  return {
    wait(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find((l) => pred(l.line));
          if (!hit) return;
          waiters.delete(check);
          clearTimeout(timer);
          lines = lines.filter((l) => l.t > hit.t);
          resolve(hit.t);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no ${kind} line matched within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    clear() {
      lines = [];
    },
    stop() {
      proc.kill();
    },
  };
}

const r = await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: N });
  const host = await tb.addHost(1);
  const { agent, pid } = startAgent(tb, host, ['--resync-interval', '1h']);
  await waitForEntries(host, pid, N, { agent });
  const routes = monitor(host.ns, 'route');
  const neighs = monitor(host.ns, 'neigh');
  await new Promise((res) => setTimeout(res, 300)); // the monitors subscribe
  const ip = (args) => execa('ip', ['-n', host.ns, ...args]);

  const routeMs = [];
  const neighMs = [];
  const u0 = procUsage(pid);
  for (let k = 0; k < K; k++) {
    const net = subnetOf(k * 7);
    const gw = net.split('/')[0];
    routes.clear();
    await ip(['route', 'del', net, 'dev', 'flannel.1']);
    const gone = await routes.wait((l) => l.startsWith(`Deleted ${net} `));
    const back = await routes.wait((l) => l.startsWith(`${net} via ${gw} `));
    routeMs.push(msSince(gone, back));

    neighs.clear();
    await ip(['neigh', 'del', gw, 'dev', 'flannel.1']);
    const ngone = await neighs.wait((l) => l.startsWith(`Deleted ${gw} `));
    const nback = await neighs.wait((l) => l.startsWith(`${gw} dev flannel.1 lladdr`) && l.includes('PERMANENT'));
    neighMs.push(msSince(ngone, nback));
  }
  const u1 = procUsage(pid);

  // The device: every entry has to come back (a new device, then N of each).
  const t0 = now();
  await ip(['link', 'del', 'flannel.1']);
  await waitForEntries(host, pid, N, { agent, intervalMs: 5 });
  const deviceMs = msSince(t0);
  routes.stop();
  neighs.stop();
  await tb.stopAgent(host);
  return {
    routeP50: percentile(routeMs, 50),
    routeP99: percentile(routeMs, 99),
    neighP50: percentile(neighMs, 50),
    neighP99: percentile(neighMs, 99),
    cpuMsPerRepair: cpuBetween(u0, u1).cpuMs / (2 * K),
    deviceMs,
  };
});

printTable(`Drift repair: ${N} peers, resync interval 1 h; ${K} routes and ${K} neighbours deleted by hand, one at a time, then the device`, [
  ['entry', 'deleted -> back p50 ms', 'p99 ms'],
  ['route', round(r.routeP50, 1), round(r.routeP99, 1)],
  ['neighbour', round(r.neighP50, 1), round(r.neighP99, 1)],
  [`device (all ${N} peers' entries back)`, round(r.deviceMs, 0), ''],
]);
console.log(`  agent CPU per repair, children incl.: ${round(r.cpuMsPerRepair, 2)} ms`);
printResult('drift', {
  n: N,
  repairs: K,
  routeP50Ms: round(r.routeP50, 2),
  routeP99Ms: round(r.routeP99, 2),
  neighP50Ms: round(r.neighP50, 2),
  neighP99Ms: round(r.neighP99, 2),
  cpuMsPerRepair: round(r.cpuMsPerRepair, 2),
  deviceAllBackMs: round(r.deviceMs, 0),
});
