// `weft`: the process entry (bin/weft imports this). The CLI itself is runCli in run.ts.
import { MAX_MANIFEST_BYTES } from '../api/manifest.js';
import { runCli } from './run.js';

/** Raw bytes: the CLI decodes them strictly, so bad UTF-8 is refused rather than mangled. */
async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.length;
    chunks.push(buf);
    // One byte over the limit is enough for the parser to refuse the input.
    if (size > MAX_MANIFEST_BYTES) break;
  }
  return Buffer.concat(chunks);
}

const code = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin,
  env: process.env,
});
process.exitCode = code;
// A stuck gRPC channel must not keep a finished command alive; output is flushed by then.
setTimeout(() => process.exit(code), 1000).unref();
