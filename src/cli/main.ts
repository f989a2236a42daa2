// `weft`: the process entry (bin/weft imports this). The CLI itself is runCli in run.ts.
// `weft agent` is dispatched before anything else is loaded: the agent needs none of the
// manifest, schema and printing modules, and every host pays their load time at start-up.

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

const argv = process.argv.slice(2);
let code: number;
if (argv[0] === 'agent') {
  // The bundle `make build` makes (one file and its code cache: agent-bundle.ts), else the modules.
  const { runAgentCommand } = await (await import('./agent-bundle.js')).loadAgent();
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
