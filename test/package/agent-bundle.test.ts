// `weft agent` as `make build` leaves it: the bundle (dist/weft-agent.cjs) and the V8 code
// cache made for it (src/cli/agent-bundle.ts says why). Needs the build in dist/.
import { readFileSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { nodeEnvOf, nodeFlagsOf } from '../../src/testbed/paths.js';
import { BIN, REPO } from '../helpers/cli.js';

const BUNDLE = `${REPO}dist/weft-agent.cjs`;
const VERSION = (JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')) as { version: string }).version;

/** `weft agent --version` as the launcher runs it (its own node flags included). */
function agentVersion(env: Record<string, string> = {}) {
  return execa(BIN, ['agent', '--version'], { reject: false, env });
}

describe('the agent bundle', () => {
  it('runs with a code cache V8 accepts under the flags bin/weft gives node', async () => {
    expect(statSync(BUNDLE).mtimeMs).toBeGreaterThanOrEqual(statSync(`${REPO}dist/agent/main.js`).mtimeMs);
    const r = await agentVersion({ WEFT_AGENT_CODE_CACHE: 'report' });
    expect(r.exitCode).toBe(0);
    expect(r.stderr.split('\n')).toEqual(['weft: agent code cache: accepted', VERSION]);
  });

  it("holds the first pass's code: the start path compiles little bytecode of its own (agent/warm-up.ts)", async () => {
    // In a node with bin/weft's flags (else V8 refuses the cache): the bundle from its cache,
    // then the build's warm-up pass, counting the bytecode V8 compiles during it. With the
    // cache made before any pass ran, that pass compiled ~75 KB here; with the warm-up in
    // the cache, ~11 KB (what V8 compiles anew whatever the cache holds).
    const script = `
      import v8 from 'node:v8';
      const { loadAgent } = await import(${JSON.stringify(`${REPO}dist/cli/agent-bundle.js`)});
      const agent = await loadAgent({ WEFT_AGENT_CODE_CACHE: 'report' });
      const before = v8.getHeapCodeStatistics().bytecode_and_metadata_size;
      const requests = await agent.warmUpStartPath(600);
      const compiled = v8.getHeapCodeStatistics().bytecode_and_metadata_size - before;
      process.stdout.write(JSON.stringify({ requests, compiled }));`;
    const r = await execa(process.execPath, [...nodeFlagsOf(BIN), '--input-type=module', '-e', script], { reject: false, env: nodeEnvOf(BIN) });
    expect([r.exitCode, r.stderr.trim()]).toEqual([0, 'weft: agent code cache: accepted']);
    const { requests, compiled } = JSON.parse(r.stdout) as { requests: number; compiled: number };
    expect(requests).toBe(3 * 599);
    expect(compiled).toBeLessThan(35_000);
  });

  it('is ASCII only, so that V8 holds its source as one byte per character', () => {
    const text = readFileSync(BUNDLE, 'latin1');
    expect(text.length).toBeGreaterThan(100_000);
    expect(text.match(/[^\x00-\x7f]/g) ?? []).toEqual([]);
  });

  it('compiles no WebAssembly (long\'s module would keep V8\'s wasm engine resident in every agent)', () => {
    expect(readFileSync(BUNDLE, 'latin1')).not.toContain('WebAssembly');
  });

  it("adds grpc-js's backoff delays in UTC (a local-time call loads ICU's time-zone tables into every agent)", () => {
    const text = readFileSync(BUNDLE, 'latin1');
    expect(text).toContain('setUTCMilliseconds(this.endTime.getUTCMilliseconds()');
    expect(text).not.toMatch(/(endTime|newEndTime)\.getMilliseconds\(/);
  });

  it('is what `weft agent` runs when it is fresh, and it exports the agent command', async () => {
    const { loadAgent } = (await import(`${REPO}dist/cli/agent-bundle.js`)) as typeof import('../../src/cli/agent-bundle.js');
    const agent = await loadAgent({});
    expect(typeof agent.runAgentCommand).toBe('function');
    // Not the compiled modules' export: the bundle has its own copy of the function.
    const compiled = (await import(`${REPO}dist/agent/main.js`)) as typeof import('../../src/agent/main.js');
    expect(agent.runAgentCommand).not.toBe(compiled.runAgentCommand);
    const r = await agentVersion();
    expect([r.exitCode, r.stderr.trim()]).toEqual([0, VERSION]);
  });
});
