// `weft agent` as one bundled file (dist/weft-agent.mjs), built after tsc by `make build`.
//
// Why: an agent's start-up was mostly module loading. Unbundled, `weft agent` loads about 540
// files (grpc-js, protobufjs, @opentelemetry/api, prom-client, cockatiel, execa, pino, ...);
// resolving, reading and compiling them one by one took 2-3x as long as one bundled file of
// the same code (docs/performance.md has the figures). The CLI stays unbundled.
//
// etcd3 reads its gRPC service definitions from proto files at load time, relative to its own
// directory; the bundle reads them from dist/proto, copied there. cli/main.ts uses the bundle
// only when it is newer than the compiled sources, so a plain `tsc` never runs stale code.
import { build } from 'esbuild';
import { cpSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const etcd3 = dirname(require.resolve('etcd3/package.json'));

const etcdProtoPath = {
  name: 'etcd3-proto-path',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const from = '`${__dirname}/../proto/rpc.proto`';
      if (!text.includes(from)) throw new Error(`etcd3 changed how it finds rpc.proto (${args.path}); update build/bundle-agent.mjs`);
      return { contents: text.replace(from, '`${__dirname}/proto/rpc.proto`'), loader: 'js' };
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
  plugins: [etcdProtoPath],
  logLevel: 'warning',
});
cpSync(join(etcd3, 'proto'), join(root, 'dist/proto'), { recursive: true });
