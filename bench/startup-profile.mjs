// Agent start-up, one run at a time, for finding where the time goes: N peer leases in etcd,
// then `node bin/weft agent` started R times on fresh hosts (each run removes its own lease),
// printing each run's log timeline (ms since spawn) and the time until the kernel holds 3N
// entries. WEFT_PROFILE_DIR=DIR adds `--cpu-prof --cpu-prof-dir=DIR` to the agent's node.
//
//   node bench/startup-profile.mjs [N] [R]
import { join } from 'node:path';
import { WEFT_BIN } from '../dist/testbed/paths.js';
import { spawnIn } from '../dist/testbed/process.js';
import { msSince, parseLog, sleep, startAgent, waitForEntries, withTestbed } from './lib.mjs';

/** As tb.startAgent, with node's --cpu-prof flags before bin/weft (NODE_OPTIONS refuses them). */
function profiledAgent(tb, host) {
  const args = [`--cpu-prof`, `--cpu-prof-dir=${profileDir}`, WEFT_BIN, 'agent', ...tb.etcdFlags(), '--iface', 'eth0',
    '--subnet-file', host.subnetFile, '--node-name', host.name, '--log-level', 'debug'];
  const wall = Date.now();
  const t0 = process.hrtime.bigint();
  host.agent = spawnIn(host.ns, process.execPath, args, join(host.dir, 'agent.log'));
  return { agent: host.agent, t0, wall, pid: host.agent.pid };
}

const n = Number(process.argv[2] ?? 5000);
const reps = Number(process.argv[3] ?? 3);
const profileDir = process.env.WEFT_PROFILE_DIR;

await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: n });
  for (let rep = 0; rep < reps; rep++) {
    const host = await tb.addHost(1 + rep);
    const { agent, t0, wall, pid } = profileDir ? profiledAgent(tb, host) : startAgent(tb, host, ['--log-level', 'debug']);
    const tDone = await waitForEntries(host, pid, n, { agent, intervalMs: 10 });
    const total = msSince(t0, tDone);
    let log = [];
    for (let i = 0; i < 40 && !log.some((l) => l.msg === 'ready'); i++) {
      await sleep(50);
      log = parseLog(tb.agentLog(host));
    }
    console.log(`run ${rep + 1}: kernel holds ${3 * n} entries after ${total.toFixed(0)} ms`);
    for (const l of log) {
      const extra = ['ms', 'kernelMs', 'operations', 'phase'].filter((k) => l.fields[k] !== undefined).map((k) => `${k}=${l.fields[k]}`).join(' ');
      console.log(`  ${String(l.t - wall).padStart(6)}  ${l.msg} ${extra}`);
    }
    await tb.stopAgent(host);
    const subnetEnv = tb.readSubnetEnv(host);
    if (subnetEnv) await worker.call('deleteKey', { key: subnetEnv.subnet.toKey() });
    await tb.removeHost(host);
  }
});
