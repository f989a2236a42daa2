// The listing's answer to subnet records (store.ts subnetRecord: the key's subnets, the value's
// JSON and validation) for N Flannel leases, as an agent start runs it before its first kernel
// work: "cold" is the first pass in a fresh process (what an agent pays), "warm" a pass after
// five more. Each checkout's build (`make build` first) runs in fresh processes, taking turns;
// medians of wall and CPU time (the process's, JIT and GC threads included).
//
//   node bench/lease-decode.mjs [N] [RUNS] [other checkout ...]
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);

async function child(root, n) {
  const { subnetRecord } = await import(join(root, 'dist/store/store.js'));
  const { leaseKeyOf, leaseValueOf } = await import(join(root, 'bench/leases.mjs'));
  const prefix = '/coreos.com/network/subnets/';
  const kvs = [];
  for (let i = 0; i < n; i++) {
    kvs.push({ key: prefix + leaseKeyOf(i), value: leaseValueOf(i), modRevision: i + 10, createRevision: i + 10, version: 1, leaseId: String(7587876543210 + i) });
  }
  const pass = (keep) => {
    const cpu = process.cpuUsage();
    const t = performance.now();
    for (const kv of kvs) keep.push(subnetRecord('default', prefix, kv));
    const used = process.cpuUsage(cpu);
    return { ms: performance.now() - t, cpuMs: (used.user + used.system) / 1000 };
  };
  const cold = pass([]); // the records are kept, as an agent keeps them
  for (let r = 0; r < 5; r++) pass([]);
  const warm = pass([]);
  console.log(JSON.stringify({ cold, warm }));
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]));
} else {
  const n = Number(process.argv[2] ?? 5000);
  const runs = Number(process.argv[3] ?? 7);
  const roots = [join(dirname(self), '..'), ...process.argv.slice(4)].map((r) => resolve(r));
  const results = new Map(roots.map((r) => [r, []]));
  for (let i = 0; i < runs; i++) {
    for (const root of roots) results.get(root).push(JSON.parse(execFileSync(process.execPath, [self, '--child', root, String(n)], { encoding: 'utf8' })));
  }
  const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1];
  console.log(`subnetRecord x ${n}, medians of ${runs} fresh processes (ms): cold wall / CPU, warm wall / CPU`);
  for (const [root, rs] of results) {
    const m = (pass, key) => median(rs.map((r) => r[pass][key])).toFixed(1);
    console.log(`  ${root.padEnd(24)} cold ${m('cold', 'ms')} / ${m('cold', 'cpuMs')}   warm ${m('warm', 'ms')} / ${m('warm', 'cpuMs')}`);
  }
}
