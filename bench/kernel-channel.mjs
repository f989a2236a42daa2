// Bench: the kernel channel on its own, netlink against iproute2, in one namespace with a
// flannel.1 device (no etcd, no agent). Per channel:
//   - one peer at a time (neighbour + FDB entry + onlink route, then their removal): p50/p99
//     wall time and CPU per event, children included (iproute2 starts processes);
//   - N peers in one plan (15,000 operations at 5,000 peers), and reading them back (dump).
// Its figures chose the channel (docs/performance.md, "The kernel channel").
//
//   node bench/kernel-channel.mjs [N]        (default 5000; needs root)
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { inScratchNamespace, percentile, printResult, printTable, round, CLK_TCK } from './lib.mjs';

const N = Number(process.argv.find((a) => /^\d+$/.test(a)) ?? 5000);
const EVENTS = 300;

if (!process.argv.includes('--inside')) {
  // The driver: a namespace of our own, the measurement inside it, cleanup whatever happens.
  inScratchNamespace('kc', (ns) => {
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--inside', String(N)], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  });
} else {
  await inside();
}

/** CPU of this process and its waited-for children, in ms. */
function cpuMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
}

async function inside() {
  const { NetlinkChannel, IprouteChannel } = await import('../dist/dataplane/channel.js');
  const { loadNetlink } = await import('../dist/dataplane/netlink.js');
  const { IpRunner } = await import('../dist/dataplane/ipcmd.js');
  const { plan } = await import('../dist/dataplane/planner.js');
  const { emptyState, peerVerdict, modelContext, addEntries } = await import('../dist/dataplane/model.js');
  const { Cidr, Ipv4 } = await import('../dist/alloc/cidr.js');

  const sh = (...a) => execFileSync(a[0], a.slice(1));
  const settings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: Cidr.parse('10.0.0.0/8') };
  const uplink = { name: 'eth0', index: 0, mtu: 1500, address: Ipv4.parse('192.0.2.1'), prefixLength: 16 };
  const ctx = modelContext({ settings, uplink, uplinkDev: 'eth0', vxlanDev: 'flannel.1', ownSubnet: Cidr.parse('10.0.0.0/24') });
  const peer = (i) => ({
    key: `p${i}`,
    subnet: Cidr.parse(`10.${1 + (i >> 8)}.${i & 255}.0/24`),
    publicIP: Ipv4.fromNumber(Ipv4.parse('192.0.3.0').value + i),
    backendType: 'vxlan',
    vtepMAC: `02:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
  });
  const stateOf = (from, to) => {
    const s = emptyState();
    for (let i = from; i < to; i++) addEntries(s, peerVerdict(ctx, peer(i)));
    return s;
  };
  const targets = { vxlanDev: 'flannel.1', uplinkDev: 'eth0', family: 4 };
  const resetDevice = () => {
    spawnSync('ip', ['link', 'del', 'flannel.1']);
    sh('ip', 'link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'local', '192.0.2.1', 'dev', 'eth0', 'nolearning', 'dstport', '8472');
    sh('ip', 'link', 'set', 'flannel.1', 'mtu', '1450', 'up');
    sh('ip', 'addr', 'replace', '10.0.0.0/32', 'dev', 'flannel.1');
  };

  const nl = loadNetlink();
  if (!('Raw' in nl)) throw new Error(`netlink unavailable: ${nl.error}`);
  const channels = [
    ['netlink', new NetlinkChannel(nl.Raw, { debug() {}, info() {}, warn() {}, error() {}, child() { return this; } })],
    ['iproute2', new IprouteChannel(new IpRunner())],
  ];
  const results = [];
  for (const [name, ch] of channels) {
    resetDevice();
    // One peer at a time, on top of 1,000 programmed (a realistic table).
    const base = stateOf(0, 1000);
    const first = await ch.apply(plan(base, emptyState()));
    if (first.failures) throw new Error(`${name}: ${first.errors.join('; ')}`);
    const wall = [];
    const c0 = cpuMs();
    for (let e = 0; e < EVENTS; e++) {
      const i = 1000 + (e >> 1);
      const one = stateOf(i, i + 1);
      const ops = e % 2 === 0 ? plan(one, emptyState()) : plan(emptyState(), one);
      const t0 = performance.now();
      const r = await ch.apply(ops);
      wall.push(performance.now() - t0);
      if (r.failures) throw new Error(`${name} event ${e}: ${r.errors.join('; ')}`);
    }
    const cpuPerEvent = (cpuMs() - c0) / EVENTS;

    // N peers in one plan, then read back.
    resetDevice();
    const all = stateOf(0, N);
    const ops = plan(all, emptyState());
    const b0 = performance.now();
    const bc0 = cpuMs();
    const bulk = await ch.apply(ops);
    const bulkMs = performance.now() - b0;
    const bulkCpu = cpuMs() - bc0;
    if (bulk.failures) throw new Error(`${name} bulk: ${bulk.failures} failed: ${bulk.errors.join('; ')}`);
    const d0 = performance.now();
    const seen = await ch.observe(targets);
    const dumpMs = performance.now() - d0;
    if (seen.routes.size !== N || seen.neighs.size !== N || seen.fdb.size !== N) {
      throw new Error(`${name} dump: ${seen.routes.size}/${seen.neighs.size}/${seen.fdb.size} of ${N}`);
    }
    results.push({ name, p50: percentile(wall, 50), p99: percentile(wall, 99), cpuPerEvent, bulkMs, bulkCpu, dumpMs, ops: ops.length });
  }
  spawnSync('ip', ['link', 'del', 'flannel.1']);

  printTable(`Kernel channel: one peer per event (3 ops, ${EVENTS} events over 1,000 peers); ${N} peers in one plan`, [
    ['channel', 'event p50 ms', 'event p99 ms', 'CPU ms/event (children incl.)', `${N} peers (${N * 3} ops) ms`, 'its CPU ms', 'dump ms'],
    ...results.map((r) => [r.name, round(r.p50, 2), round(r.p99, 2), round(r.cpuPerEvent, 2), round(r.bulkMs, 0), round(r.bulkCpu, 0), round(r.dumpMs, 0)]),
  ]);
  printResult(
    'kernel-channel',
    results.map((r) => ({
      channel: r.name,
      events: EVENTS,
      eventP50Ms: round(r.p50, 3),
      eventP99Ms: round(r.p99, 3),
      cpuMsPerEvent: round(r.cpuPerEvent, 3),
      peers: N,
      bulkMs: round(r.bulkMs, 1),
      bulkCpuMs: round(r.bulkCpu, 1),
      dumpMs: round(r.dumpMs, 1),
    })),
  );
  process.exit(0);
}
