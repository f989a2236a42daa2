// Agent start-up, one start at a time, for finding where the time goes: N peer leases in
// etcd, then `node bin/weft agent` started R times on fresh hosts (each run removes its own
// lease afterwards), printing each run's log timeline (ms since the spawn), the time until
// the kernel holds all 3N entries and the agent's CPU time by then; then the median of each point. Extra arguments name other
// launchers (another checkout's bin/weft) to compare with in the same run: the runs take turns.
// WEFT_PROFILE_DIR=DIR runs node with --cpu-prof into DIR; a launcher written `FLAGS@bin` (e.g.
// `--max-semi-space-size=32@bin/weft`) runs that bin with those node flags (comma-separated).
//
//   node bench/startup-profile.mjs [N] [R] [other/bin/weft ...]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentEnvOf, nodeFlagsOf, WEFT_BIN } from '../dist/testbed/paths.js';
import { spawnIn } from '../dist/testbed/process.js';
import { fibPrefixesIn, msSince, parseLog, percentile, removeHostSettled, sleep, waitForFullSync, withTestbed } from './lib.mjs';

const n = Number(process.argv[2] ?? 5000);
const reps = Number(process.argv[3] ?? 3);
const bins = [WEFT_BIN, ...process.argv.slice(4)];
const profileDir = process.env.WEFT_PROFILE_DIR;
const POINTS = ['starting weft agent', 'using interface', 'created vxlan device', 'lease acquired', 'dataplane converged', 'ready'];

/**
 * The agent's CPU time so far in ms (the kernel's schedstat, in ns): its main thread's, and all
 * its threads' (the bulk thread, V8's and libuv's). Less hostage to the machine's load than
 * the wall times, so the agent's own work per start compares across launchers.
 */
function cpuMs(pid) {
  const ms = (task) => Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  let all = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      all += ms(task);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return { main: ms(pid), all };
}

/** As tb.startAgent, with the launcher chosen (and node's --cpu-prof flags, which NODE_OPTIONS refuses). */
function startAgent(tb, host, launcher) {
  const at = launcher.lastIndexOf('@');
  const bin = at < 0 ? launcher : launcher.slice(at + 1);
  const flags = at < 0 ? nodeFlagsOf(bin) : launcher.slice(0, at).split(',');
  const node = [...flags, ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [])];
  const args = [...node, bin, 'agent', ...tb.etcdFlags(), '--iface', 'eth0', '--subnet-file', host.subnetFile, '--node-name', host.name, '--log-level', 'debug'];
  const wall = Date.now();
  const t0 = process.hrtime.bigint();
  host.agent = spawnIn(host.ns, process.execPath, args, join(host.dir, 'agent.log'), agentEnvOf(bin), { inherit: false });
  return { agent: host.agent, t0, wall };
}

const results = new Map(bins.map((b) => [b, []]));
await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: n });
  for (let rep = 0; rep < reps; rep++) {
    for (const [i, bin] of bins.entries()) {
      const host = await tb.addHost(1 + rep * bins.length + i); // a fresh host (and log) each time
      const base = await fibPrefixesIn(host.ns);
      const { agent, t0, wall } = startAgent(tb, host, bin);
      const tDone = await waitForFullSync(host, agent.pid, n, { agent, base });
      const total = msSince(t0, tDone);
      const cpu = cpuMs(agent.pid);
      let log = [];
      for (let i = 0; i < 40 && !log.some((l) => l.msg === 'ready'); i++) {
        await sleep(50);
        log = parseLog(tb.agentLog(host));
      }
      console.log(`${bin}, run ${rep + 1}: kernel holds ${3 * n} entries after ${total.toFixed(0)} ms (CPU: main thread ${cpu.main.toFixed(0)} ms, all threads ${cpu.all.toFixed(0)} ms)`);
      const row = { total, mainCpuMs: cpu.main, cpuMs: cpu.all };
      for (const l of log) {
        const extra = ['ms', 'kernelMs', 'operations'].filter((k) => l.fields[k] !== undefined).map((k) => `${k}=${l.fields[k]}`).join(' ');
        console.log(`  ${String(l.t - wall).padStart(6)}  ${l.msg} ${extra}`);
        if (POINTS.includes(l.msg) && row[l.msg] === undefined) row[l.msg] = l.t - wall;
        if (l.msg === 'dataplane converged' && row.reconcileMs === undefined) {
          row.reconcileMs = Number(l.fields.ms);
          row.kernelMs = Number(l.fields.kernelMs);
        }
      }
      results.get(bin).push(row);
      await tb.stopAgent(host);
      const env = tb.readSubnetEnv(host);
      if (env) await worker.call('deleteKey', { key: env.subnet.toKey() });
      await removeHostSettled(tb, host, n);
    }
  }
});

console.log(`\nmedians over ${reps} runs, N=${n} (ms since the spawn)`);
const cols = ['total', ...POINTS, 'reconcileMs', 'kernelMs', 'mainCpuMs', 'cpuMs'];
for (const [bin, rows] of results) {
  console.log(`  ${bin}`);
  for (const c of cols) {
    const xs = rows.map((r) => r[c]).filter((x) => x !== undefined && !Number.isNaN(x));
    if (xs.length) console.log(`    ${c.padEnd(22)} ${percentile(xs, 50).toFixed(0)}`);
  }
}
