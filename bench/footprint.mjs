// Bench 5, footprint: one agent with N peers programmed, left idle for a window that holds
// three periodic kernel resyncs (the default --resync-interval 60s; the first one after start
// costs more than the rest, while V8 still optimises the dump's code): RSS, CPU, and the etcd requests
// it makes (grpc_server_started_total deltas from etcd's /metrics; nothing else talks to etcd
// during the window). The window opens after the agent has been idle for settleSeconds: what
// start-up leaves behind (V8's one-off clean-up of the start's garbage, some 200-300 ms of CPU
// in the first seconds) is not the idle cost; it is reported beside it as the settle CPU.
//
//   node bench/footprint.mjs [N] [windowSeconds] [settleSeconds]      (default 5000 185 30)
import { msSince, printResult, printTable, procUsage, round, sleep, startAgent, waitForEntries, withTestbed } from './lib.mjs';

const N = Number(process.argv[2] ?? 5000);
const WINDOW_S = Number(process.argv[3] ?? 185);
const SETTLE_S = Number(process.argv[4] ?? 30);

const r = await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: N });
  const host = await tb.addHost(1);
  const { agent, pid } = startAgent(tb, host);
  await waitForEntries(host, pid, N, { agent });
  const afterSync = procUsage(pid);
  const settleT0 = process.hrtime.bigint();
  await sleep(SETTLE_S * 1000); // the measurement's own lead-in, not a wait for a condition
  const settleMs = msSince(settleT0);
  const m0 = await worker.call('metrics', { endpoint: tb.etcdEndpoint });
  const u0 = procUsage(pid);
  const settleCpuMsPerMin = ((u0.cpuMs - afterSync.cpuMs) / settleMs) * 60_000;
  const t0 = process.hrtime.bigint();
  let peakRss = u0.rssMb;
  while (msSince(t0) < WINDOW_S * 1000) {
    await sleep(1000);
    peakRss = Math.max(peakRss, procUsage(pid).rssMb);
  }
  const u1 = procUsage(pid);
  const elapsed = msSince(t0);
  const m1 = await worker.call('metrics', { endpoint: tb.etcdEndpoint });
  const requests = {};
  for (const k of new Set([...Object.keys(m0), ...Object.keys(m1)])) {
    const d = (m1[k] ?? 0) - (m0[k] ?? 0);
    if (d > 0) requests[k] = d;
  }
  // The worker's own /metrics fetch is plain HTTP, not gRPC: it does not show up here.
  const total = Object.values(requests).reduce((a, b) => a + b, 0);
  await tb.stopAgent(host);
  return {
    rssMb: u1.rssMb,
    rssAfterSyncMb: afterSync.rssMb,
    peakRssMb: peakRss,
    cpuPercent: ((u1.cpuMs - u0.cpuMs) / elapsed) * 100,
    cpuMsPerMin: ((u1.cpuMs - u0.cpuMs) / elapsed) * 60_000,
    // Where it went: the agent's own threads, the children it ran and reaped (iptables-save),
    // and its running children (rtmon).
    cpuMsPerMinByPart: {
      own: round(((u1.ownCpuMs - u0.ownCpuMs) / elapsed) * 60_000, 0),
      reapedChildren: round(((u1.cpuMs - u1.ownCpuMs - u1.liveChildrenCpuMs - (u0.cpuMs - u0.ownCpuMs - u0.liveChildrenCpuMs)) / elapsed) * 60_000, 0),
      liveChildren: round(((u1.liveChildrenCpuMs - u0.liveChildrenCpuMs) / elapsed) * 60_000, 0),
    },
    settleCpuMsPerMin,
    settleS: settleMs / 1000,
    requestsPerMin: (total / elapsed) * 60_000,
    requests,
    windowS: elapsed / 1000,
  };
});

printTable(`Footprint: one idle agent with ${N} peers, ${round(r.windowS, 0)} s window (a periodic resync a minute) after ${round(r.settleS, 0)} s idle`, [
  ['RSS MB (peak)', 'CPU %', 'CPU ms/min', 'of which own / reaped children / running children', 'settle CPU ms/min', 'etcd requests/min', 'by method'],
  [
    `${round(r.rssMb)} (${round(r.peakRssMb)})`,
    round(r.cpuPercent, 2),
    round(r.cpuMsPerMin, 0),
    `${r.cpuMsPerMinByPart.own} / ${r.cpuMsPerMinByPart.reapedChildren} / ${r.cpuMsPerMinByPart.liveChildren}`,
    round(r.settleCpuMsPerMin, 0),
    round(r.requestsPerMin, 2),
    JSON.stringify(r.requests),
  ],
]);
printResult('footprint', {
  n: N,
  rssMb: round(r.rssMb),
  peakRssMb: round(r.peakRssMb),
  cpuPercent: round(r.cpuPercent, 2),
  cpuMsPerMin: round(r.cpuMsPerMin, 0),
  cpuMsPerMinByPart: r.cpuMsPerMinByPart,
  settleS: round(r.settleS, 0),
  settleCpuMsPerMin: round(r.settleCpuMsPerMin, 0),
  etcdRequestsPerMin: round(r.requestsPerMin, 2),
  requests: r.requests,
  windowS: round(r.windowS, 0),
});
