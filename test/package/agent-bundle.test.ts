// `weft agent` as `make build` leaves it: the bundle (dist/weft-agent.cjs) and the V8 code
// cache made for it (src/cli/agent-bundle.ts says why). Needs the build in dist/.
import { readFileSync, statSync } from 'node:fs';
import { Script } from 'node:vm';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BIN, REPO } from '../helpers/cli.js';

const BUNDLE = `${REPO}dist/weft-agent.cjs`;

describe('the agent bundle', () => {
  it('comes with a code cache this node accepts, made for this very bundle', () => {
    const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(BUNDLE, 'utf8')}\n});`;
    const accepted = new Script(source, { filename: BUNDLE, cachedData: readFileSync(`${BUNDLE}.cache`) });
    expect(accepted.cachedDataRejected).toBe(false);
    // V8 checks the cache against the source: one for other code is refused (and merely unused).
    const other = new Script(`${source}\n;void 0;`, { filename: BUNDLE, cachedData: readFileSync(`${BUNDLE}.cache`) });
    expect(other.cachedDataRejected).toBe(true);
  });

  it('is what `weft agent` runs when it is fresh, and it exports the agent command', async () => {
    const { loadAgent } = (await import(`${REPO}dist/cli/agent-bundle.js`)) as typeof import('../../src/cli/agent-bundle.js');
    expect(statSync(BUNDLE).mtimeMs).toBeGreaterThanOrEqual(statSync(`${REPO}dist/agent/main.js`).mtimeMs);
    const agent = await loadAgent();
    expect(typeof agent.runAgentCommand).toBe('function');
    // Not the compiled modules' export: the bundle has its own copy of the function.
    const compiled = (await import(`${REPO}dist/agent/main.js`)) as typeof import('../../src/agent/main.js');
    expect(agent.runAgentCommand).not.toBe(compiled.runAgentCommand);
    const version = JSON.parse(readFileSync(`${REPO}package.json`, 'utf8')).version as string;
    const r = await execa(process.execPath, [BIN, 'agent', '--version'], { reject: false });
    expect([r.exitCode, r.stderr.trim()]).toEqual([0, version]);
  });
});
