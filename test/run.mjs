#!/usr/bin/env node
// Runs the whole suite and ends with the plain summary line CI reads: "N passed, N failed".
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'weft-results-'));
const out = join(dir, 'results.json');
const run = spawnSync(
  'npx',
  ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${out}`, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
let passed = 0;
let failed = 0;
try {
  const results = JSON.parse(readFileSync(out, 'utf8'));
  for (const file of results.testResults ?? []) {
    for (const t of file.assertionResults ?? []) {
      if (t.status === 'passed') passed++;
      else failed++; // skipped, todo and pending count as failures: a skipped test proves nothing
    }
    // A file that failed to load has no assertion results; count it so it cannot pass silently.
    if ((file.assertionResults ?? []).length === 0 && file.status === 'failed') failed++;
  }
} catch (err) {
  console.error(`could not read test results: ${err.message}`);
  failed++;
}
rmSync(dir, { recursive: true, force: true });
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
