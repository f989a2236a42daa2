// `weft agent` as one bundled file (dist/weft-agent.mjs), built after tsc by `make build`.
//
// Why: an agent's start-up was mostly module loading. Unbundled, `weft agent` loads about 540
// files (grpc-js, protobufjs, @opentelemetry/api, prom-client, cockatiel, execa, pino, ...);
// resolving, reading and compiling them one by one took 2-3x as long as one bundled file of
// the same code (docs/performance.md has the figures). The CLI stays unbundled.
//
// cli/main.ts uses the bundle only when it is at least as new as the compiled sources, so a
// plain `tsc` never runs stale code.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const etcd3 = dirname(require.resolve('etcd3/package.json'));

/**
 * etcd3 parses its gRPC service definitions (rpc.proto, 36 KB) with protobufjs at load time,
 * the largest single cost of loading the agent (~170 ms of CPU here). The bundle gets them
 * parsed at build time instead, as protobufjs JSON handed to proto-loader's fromJSON (~45 ms):
 * the same definitions, without the parse.
 */
const etcdProto = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const from = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`,';
      if (!text.includes(from)) throw new Error(`etcd3 changed how it loads rpc.proto (${args.path}); update build/bundle-agent.mjs`);
      const protobuf = require('protobufjs');
      const root = new protobuf.Root();
      // As proto-loader parses it for etcd3 (keepCase), so that field names match.
      root.loadSync(join(etcd3, 'proto', 'rpc.proto'), { keepCase: true });
      const json = JSON.stringify(root.toJSON());
      return { contents: text.replace(from, `(0, proto_loader_1.fromJSON)(${json},`), loader: 'js' };
    });
  },
};

await build({
  entryPoints: [join(root, 'dist/agent/main.js')],
  outfile: join(root, 'dist/weft-agent.mjs'),
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // CommonJS dependencies inside an ES module: give them require, __filename and __dirname
  // (the bundle's own, dist/).
  banner: {
    js: [
      "import { createRequire as __weftRequire } from 'node:module';",
      "import { fileURLToPath as __weftPath } from 'node:url';",
      'const require = __weftRequire(import.meta.url);',
      'const __filename = __weftPath(import.meta.url);',
      "const __dirname = __weftPath(new URL('.', import.meta.url));",
    ].join(' '),
  },
  plugins: [etcdProto],
  logLevel: 'warning',
});
