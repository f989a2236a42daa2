// `make bench`: every bench in turn (each a separate node process, so one's garbage or
// leftovers cannot skew the next), then all machine-readable lines together.
import { spawn } from 'node:child_process';
import { cpus, totalmem, release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCHES = ['full-sync.mjs', 'incremental.mjs', 'propagation.mjs', 'join-storm.mjs', 'footprint.mjs', 'drift.mjs', 'kernel-channel.mjs'];

if (process.getuid?.() !== 0) {
  console.error('the benches create network namespaces: run them as root');
  process.exit(1);
}
console.log(`machine: ${cpus().length} cpus (${cpus()[0]?.model ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, kernel ${release()}, node ${process.version}`);
const t0 = Date.now();
const lines = [];
for (const b of BENCHES) {
  console.log(`\n=== ${b}`);
  const code = await new Promise((resolve) => {
    const p = spawn(process.execPath, [join(HERE, b)], { stdio: ['ignore', 'pipe', 'inherit'] });
    p.stdout.on('data', (d) => {
      process.stdout.write(d);
      for (const l of d.toString().split('\n')) if (l.startsWith('BENCH ')) lines.push(l);
    });
    p.on('close', resolve);
  });
  if (code !== 0) {
    console.error(`${b} failed (exit ${code})`);
    process.exit(1);
  }
}
console.log(`\n=== all figures (${Math.round((Date.now() - t0) / 1000)} s)`);
for (const l of lines) console.log(l);
