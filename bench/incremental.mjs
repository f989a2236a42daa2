// Bench 2, incremental cost: with N peers programmed, add a lease, give it a new VTEP MAC,
// remove it (200 events in all, one at a time). Per event: kernel operations (the agent's
// pass lines: 'dataplane converged', or a peer's line with the pass's outcome), agent CPU
// (each thread's schedstat, its children's utime + stime added: cpuBetween in lib.mjs), and the latency from the etcd put to the kernel
// showing the change (`ip monitor` / `bridge monitor` in the host namespace),
// against the etcd put -> watch event latency seen by a watcher in the same run.
//
//   node bench/incremental.mjs [N ...]      (default 1000 5000)
//   WEFT_BENCH_EVENTS=1200 node bench/incremental.mjs 1000   (more events: the first few hundred
//   include V8 optimizing the event path's functions, once per agent; 200 by default)
//   WEFT_BENCH_WARMUP=1500 ...   (events before the measured ones; 6 by default)
// bench/cpu-pair.mjs compares two builds' CPU per event over the same events and seconds.
import {
  cpuBetween,
  isPassLine,
  msSince,
  parseLog,
  percentile,
  printResult,
  printTable,
  procUsage,
  round,
  startAgent,
  untilQuiet,
  waitForEntries,
  withTestbed,
} from './lib.mjs';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const NS = sizes.length ? sizes : [1000, 5000];
const EVENTS = Number(process.env.WEFT_BENCH_EVENTS ?? 200);
const WARMUP = Number(process.env.WEFT_BENCH_WARMUP ?? 6);
const KINDS = ['add', 'change', 'remove'];

async function incremental(n) {
  return withTestbed(async (tb, worker) => {
    await worker.call('bulk', { from: 0, to: n });
    const host = await tb.addHost(1);
    const { agent, pid } = startAgent(tb, host);
    await waitForEntries(host, pid, n, { agent });
    // The 200 events take about a second; without this the collection of the full sync's
    // garbage (hundreds of ms, once) lands in that second and is counted as per-event CPU.
    await untilQuiet([pid]);
    await worker.call('startMonitor', { ns: host.ns, kinds: ['route', 'neigh', 'fdb'] });
    const convergedBefore = parseLog(tb.agentLog(host)).filter(isPassLine).length;
    // Warm up (JIT, first-use paths) on a few events outside the measurement.
    for (let k = 0; k < WARMUP; k++) {
      const i = n + 1000 + Math.floor(k / 3);
      await worker.call('event', { kind: KINDS[k % 3], i, variant: k % 3 === 0 ? 0 : 1, hosts: [host.ns], kinds: ['route', 'neigh', 'fdb'] });
    }
    // The kernel shows a change just before its pass logs it: wait for the last warm-up's line.
    let warmLines = 0;
    for (let k = 0; k < 40 && warmLines < convergedBefore + WARMUP; k++) {
      warmLines = parseLog(tb.agentLog(host)).filter(isPassLine).length;
      if (warmLines < convergedBefore + WARMUP) await new Promise((r) => setTimeout(r, 50));
    }
    const u0 = procUsage(pid);
    const samples = [];
    for (let e = 0; e < EVENTS; e++) {
      const kind = KINDS[e % 3];
      const i = n + Math.floor(e / 3); // a fresh peer per add/change/remove cycle
      const r = await worker.call('event', { kind, i, variant: kind === 'add' ? 0 : 1, hosts: [host.ns], kinds: ['route', 'neigh', 'fdb'] });
      samples.push({ kind, watchMs: msSince(r.tPut, r.tWatch), kernelMs: msSince(r.tPut, r.tKernel[0]) });
    }
    const u1 = procUsage(pid);
    const cpu = cpuBetween(u0, u1);
    // The converged line is logged right after the batches; give the last one a moment.
    let lines = [];
    for (let k = 0; k < 40; k++) {
      lines = parseLog(tb.agentLog(host)).filter(isPassLine).slice(warmLines);
      if (lines.length >= EVENTS) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const ops = lines.map((l) => Number(l.fields.operations));
    const opsByKind = {};
    if (lines.length === EVENTS) {
      for (const kind of KINDS) opsByKind[kind] = [...new Set(ops.filter((_, e) => KINDS[e % 3] === kind))].join('/');
    }
    const reconcileMs = lines.map((l) => Number(l.fields.ms)).filter(Number.isFinite);
    const jsMs = lines.map((l) => Number(l.fields.ms) - Number(l.fields.kernelMs)).filter(Number.isFinite);
    await tb.stopAgent(host);
    const pick = (k, f) => samples.filter((s) => !k || s.kind === k).map((s) => s[f]);
    return {
      n,
      warmup: warmLines - convergedBefore,
      reconciles: lines.length,
      opsPerEvent: ops.reduce((a, b) => a + b, 0) / EVENTS,
      opsByKind,
      cpuMsPerEvent: cpu.cpuMs / EVENTS,
      ownCpuMsPerEvent: cpu.ownCpuMs / EVENTS,
      tickCpuMsPerEvent: (u1.cpuMs - u0.cpuMs) / EVENTS,
      cpuPrecise: cpu.precise,
      mainThreadCpuMsPerEvent: cpu.mainThreadCpuMs === undefined ? undefined : cpu.mainThreadCpuMs / EVENTS,
      reconcileP50: percentile(reconcileMs, 50),
      jsP50: percentile(jsMs, 50),
      watchP50: percentile(pick(undefined, 'watchMs'), 50),
      watchP99: percentile(pick(undefined, 'watchMs'), 99),
      kernelP50: percentile(pick(undefined, 'kernelMs'), 50),
      kernelP99: percentile(pick(undefined, 'kernelMs'), 99),
      byKind: Object.fromEntries(KINDS.map((k) => [k, { p50: percentile(pick(k, 'kernelMs'), 50), p99: percentile(pick(k, 'kernelMs'), 99) }])),
    };
  });
}

const results = [];
for (const n of NS) {
  const r = await incremental(n);
  results.push(r);
  console.error(`incremental N=${n}: kernel p99 ${round(r.kernelP99)} ms, watch p99 ${round(r.watchP99)} ms`);
}

printTable(`Incremental: ${EVENTS} events (add / new MAC / remove), one at a time`, [
  ['N', 'ops/event (add/change/remove)', 'agent CPU ms/event, children incl. (own / main thread)', 'reconcile p50 ms (JS part)', 'put->watch p50/p99 ms', 'put->kernel p50/p99 ms', 'add p99', 'change p99', 'remove p99', 'p99 ratio'],
  ...results.map((r) => [
    r.n,
    `${round(r.opsPerEvent, 2)} (${KINDS.map((k) => r.opsByKind[k] ?? '?').join(', ')})`,
    `${round(r.cpuMsPerEvent, 2)} (${round(r.ownCpuMsPerEvent, 2)} / ${r.mainThreadCpuMsPerEvent === undefined ? '?' : round(r.mainThreadCpuMsPerEvent, 2)})`,
    `${round(r.reconcileP50, 2)} (${round(r.jsP50, 2)})`,
    `${round(r.watchP50, 2)} / ${round(r.watchP99, 2)}`,
    `${round(r.kernelP50, 2)} / ${round(r.kernelP99, 2)}`,
    round(r.byKind.add.p99, 1),
    round(r.byKind.change.p99, 1),
    round(r.byKind.remove.p99, 1),
    `${round(r.kernelP99 / r.watchP99, 2)}x`,
  ]),
]);
printResult(
  'incremental',
  results.map((r) => ({
    n: r.n,
    events: EVENTS,
    opsPerEvent: round(r.opsPerEvent, 2),
    opsByKind: r.opsByKind,
    cpuMsPerEvent: round(r.cpuMsPerEvent, 2),
    ownCpuMsPerEvent: round(r.ownCpuMsPerEvent, 2),
    tickCpuMsPerEvent: round(r.tickCpuMsPerEvent, 2),
    cpuPrecise: r.cpuPrecise,
    mainThreadCpuMsPerEvent: r.mainThreadCpuMsPerEvent === undefined ? undefined : round(r.mainThreadCpuMsPerEvent, 2),
    reconcileP50Ms: round(r.reconcileP50, 2),
    reconcileJsP50Ms: round(r.jsP50, 2),
    watchP50Ms: round(r.watchP50, 2),
    watchP99Ms: round(r.watchP99, 2),
    kernelP50Ms: round(r.kernelP50, 2),
    kernelP99Ms: round(r.kernelP99, 2),
    p99Ratio: round(r.kernelP99 / r.watchP99, 2),
  })),
);
