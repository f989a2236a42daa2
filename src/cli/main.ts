// `weft`: the process entry (bin/weft imports this). The CLI itself is runCli in run.ts.
// `weft agent` is dispatched before anything else is loaded: the agent needs none of the
// manifest, schema and printing modules, and every host pays their load time at start-up.

import { statSync } from 'node:fs';

/** Raw bytes: the CLI decodes them strictly, so bad UTF-8 is refused rather than mangled. */
async function readStdin(limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.length;
    chunks.push(buf);
    // One byte over the limit is enough for the parser to refuse the input.
    if (size > limit) break;
  }
  return Buffer.concat(chunks);
}

/**
 * The agent's code: the bundle `make build` makes (dist/weft-agent.mjs, one file, loads 2-3x
 * faster) when it is at least as new as the compiled agent, else the compiled modules.
 */
function agentModule(): string {
  const bundle = new URL('../weft-agent.mjs', import.meta.url);
  const compiled = new URL('../agent/main.js', import.meta.url);
  try {
    if (statSync(bundle).mtimeMs >= statSync(compiled).mtimeMs) return bundle.href;
  } catch {
    // No bundle (a plain `tsc` build, or running from src/): the modules.
  }
  return compiled.href;
}

const argv = process.argv.slice(2);
let code: number;
if (argv[0] === 'agent') {
  const { runAgentCommand } = (await import(agentModule())) as typeof import('../agent/main.js');
  code = await runAgentCommand(argv.slice(1));
} else {
  const [{ MAX_MANIFEST_BYTES }, { runCli }] = await Promise.all([import('../api/manifest.js'), import('./run.js')]);
  code = await runCli(argv, {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    readStdin: () => readStdin(MAX_MANIFEST_BYTES),
    env: process.env,
  });
}
process.exitCode = code;
// A stuck gRPC channel must not keep a finished command alive; output is flushed by then.
setTimeout(() => process.exit(code), 1000).unref();
