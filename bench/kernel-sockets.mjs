// Bench: does the kernel take a full sync's route work and its neighbour/FDB work side by side
// from two netlink sockets? (issue 13, full sync third pass; docs/performance.md.) In a fresh
// namespace with a flannel.1 device per measurement, N peers (no etcd, no agent), through
// weft's own request encoding and socket (dist/dataplane/rtnl.js, netlink.js):
//   routes   N onlink routes (proto 119), one socket
//   nf       N neighbours + N FDB entries, one socket
//   serial   all 3N, 512 peers at a time (neighbours and FDB entries, then their routes), one
//            socket: what the agent's bulk thread does
//   beside   the N routes from a worker thread's socket while this thread sends the 2N
//            neighbours and FDB entries on its own, both started together; also the time the
//            neighbours and FDB entries took there (nf's own time when the kernel takes them
//            side by side, routes' time when it serialises them)
//
//   node bench/kernel-sockets.mjs [N] [reps]        (default 5000 3; needs root)
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const MODES = ['routes', 'nf', 'serial', 'beside'];
const CHUNK = 512;

if (!isMainThread) await routesInWorker();
else if (process.argv[2] === '--inside') await inside(process.argv[3], Number(process.argv[4]));
else await driver();

async function driver() {
  const { inScratchNamespace, median, printResult, printTable, round } = await libs();
  const n = Number(process.argv[2] ?? 5000);
  const reps = Number(process.argv[3] ?? 3);
  const runs = new Map(MODES.map((m) => [m, []]));
  for (let rep = 0; rep < reps; rep++) {
    for (const mode of MODES) {
      // A namespace of our own per measurement (the route cost grows with the routes present).
      inScratchNamespace('ks', (ns, ip) => {
        ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', '192.0.2.1', 'dev', 'eth0', 'nolearning', 'dstport', '8472');
        ip('link', 'set', 'flannel.1', 'mtu', '1450', 'up');
        ip('addr', 'replace', '10.0.0.0/32', 'dev', 'flannel.1');
        const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', mode, String(n)], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`${mode}: exit ${r.status} ${r.signal ?? ""} ${r.error?.message ?? ""} ${r.stderr}`);
        runs.get(mode).push(JSON.parse(r.stdout));
      });
    }
  }
  const all = (mode, f) => runs.get(mode).map((r) => r[f]);
  const cell = (mode, f) => `${round(median(all(mode, f)), 0)} (${all(mode, f).map((v) => round(v, 0)).join(' ')})`;
  printTable(`Kernel sockets: ${n} peers, ms, median (each run), ${reps} runs`, [
    ['mode', 'all entries in the kernel', 'neighbours + FDB entries'],
    ['routes (one socket)', cell('routes', 'ms'), '-'],
    ['neighbours + FDB (one socket)', cell('nf', 'ms'), cell('nf', 'ms')],
    ['serial (one socket, by chunks)', cell('serial', 'ms'), '-'],
    ['beside (routes on a thread)', cell('beside', 'ms'), cell('beside', 'nfMs')],
  ]);
  printResult('kernel-sockets', Object.fromEntries(MODES.map((m) => [m, { ms: round(median(all(m, 'ms')), 0), ...(m === 'beside' ? { nfMs: round(median(all(m, 'nfMs')), 0) } : {}) }])));
}

async function libs() {
  const { inScratchNamespace, percentile, printResult, printTable, round } = await import('./lib.mjs');
  return { inScratchNamespace, median: (xs) => percentile(xs, 50), printResult, printTable, round };
}

/** The requests for n peers: per peer [neighbour, FDB entry] and its route. */
async function requests(n) {
  const rtnl = await import('../dist/dataplane/rtnl.js');
  const { Cidr, Ipv4 } = await import('../dist/alloc/cidr.js');
  const index = Number(execFileSync('cat', ['/sys/class/net/flannel.1/ifindex']).toString());
  const hex = (v) => v.toString(16).padStart(2, '0');
  const nf = [];
  const routes = [];
  for (let i = 0; i < n; i++) {
    const net = `10.${1 + (i >> 8)}.${i & 255}`;
    const gw = Ipv4.parse(`${net}.0`);
    const mac = `02:00:00:${hex((i >> 16) & 255)}:${hex((i >> 8) & 255)}:${hex(i & 255)}`;
    nf.push(rtnl.neighReplace(gw, mac, index), rtnl.fdbReplace(mac, Ipv4.fromNumber(Ipv4.parse('192.0.3.0').value + i), index));
    routes.push(rtnl.routeReplace({ dst: Cidr.parse(`${net}.0/24`), via: gw, oif: index, onlink: true, proto: 119, metric: 0 }));
  }
  return { nf, routes };
}

async function socket() {
  const { loadNetlink, NetlinkSocket } = await import('../dist/dataplane/netlink.js');
  const nl = loadNetlink();
  if (!('Raw' in nl)) throw new Error(nl.error);
  const sock = new NetlinkSocket(nl.Raw);
  sock.setReceiveBuffer(1 << 20);
  return sock;
}

function refused(errnos) {
  return errnos.filter((e) => e !== 0).length;
}

async function inside(mode, n) {
  const { nf, routes } = await requests(n);
  const sock = await socket();
  let worker;
  let exited;
  if (mode === 'beside') {
    worker = new Worker(new URL(import.meta.url), { workerData: { n } });
    // Listened for from the start: the worker may be gone before the routes' answer is handled.
    exited = new Promise((resolve) => worker.once('exit', resolve));
    await new Promise((resolve) => worker.once('message', resolve));
  }
  let failed = 0;
  let nfMs;
  const t0 = performance.now();
  if (mode === 'routes') failed += refused(await sock.transact(routes));
  else if (mode === 'nf') failed += refused(await sock.transact(nf));
  else if (mode === 'serial') {
    for (let i = 0; i < n; i += CHUNK) {
      failed += refused(await sock.transact(nf.slice(2 * i, 2 * (i + CHUNK))));
      failed += refused(await sock.transact(routes.slice(i, i + CHUNK)));
    }
  } else {
    const routesDone = new Promise((resolve) => worker.once('message', resolve));
    worker.postMessage('go');
    failed += refused(await sock.transact(nf));
    nfMs = performance.now() - t0;
    failed += await routesDone;
  }
  const ms = performance.now() - t0;
  sock.close();
  await exited;
  if (failed > 0) throw new Error(`${mode}: the kernel refused ${failed} requests`);
  process.stdout.write(JSON.stringify({ ms, ...(nfMs !== undefined ? { nfMs } : {}) }));
}

/** The worker of `beside`: sends the routes when told to, answers how many were refused, closes its socket and exits. */
async function routesInWorker() {
  const { routes } = await requests(workerData.n);
  const sock = await socket();
  parentPort.postMessage('ready');
  parentPort.once('message', async () => {
    const failed = refused(await sock.transact(routes));
    sock.close();
    parentPort.postMessage(failed);
    parentPort.close();
  });
}
