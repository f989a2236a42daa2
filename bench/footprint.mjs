// Bench 5, footprint: one agent with N peers programmed, left idle for a window that holds one
// periodic kernel resync (the default --resync-interval 60s): RSS, CPU, and the etcd requests
// it makes (grpc_server_started_total deltas from etcd's /metrics; nothing else talks to etcd
// during the window).
//
//   node bench/footprint.mjs [N] [windowSeconds]      (default 5000 65)
import { msSince, printResult, printTable, procUsage, round, sleep, startAgent, waitForEntries, withTestbed } from './lib.mjs';

const N = Number(process.argv[2] ?? 5000);
const WINDOW_S = Number(process.argv[3] ?? 65);

const r = await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: N });
  const host = await tb.addHost(1);
  const { agent, pid } = startAgent(tb, host);
  await waitForEntries(host, pid, N, { agent });
  await sleep(2000); // let start-up garbage be collected
  const afterSync = procUsage(pid);
  const m0 = await worker.call('metrics', { endpoint: tb.etcdEndpoint });
  const u0 = procUsage(pid);
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
    requestsPerMin: (total / elapsed) * 60_000,
    requests,
    windowS: elapsed / 1000,
  };
});

printTable(`Footprint: one idle agent with ${N} peers, ${round(r.windowS, 0)} s window (one periodic resync)`, [
  ['RSS MB (peak)', 'CPU %', 'CPU ms/min', 'of which own / reaped children / running children', 'etcd requests/min', 'by method'],
  [
    `${round(r.rssMb)} (${round(r.peakRssMb)})`,
    round(r.cpuPercent, 2),
    round(r.cpuMsPerMin, 0),
    `${r.cpuMsPerMinByPart.own} / ${r.cpuMsPerMinByPart.reapedChildren} / ${r.cpuMsPerMinByPart.liveChildren}`,
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
  etcdRequestsPerMin: round(r.requestsPerMin, 2),
  requests: r.requests,
  windowS: round(r.windowS, 0),
});
