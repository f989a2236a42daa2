// `weft agent` as `make build` leaves it: the bundle (dist/weft-agent.cjs) and the V8 code
// cache made for it (src/cli/agent-bundle.ts says why). Needs the build in dist/.
import { readFileSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
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
