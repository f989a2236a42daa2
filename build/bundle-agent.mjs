// `weft agent` as one bundled file (dist/weft-agent.cjs) and V8's code cache for it
// (dist/weft-agent.cjs.cache), built after tsc by `make build`.
//
// Why: an agent's start-up was mostly module loading. Unbundled, `weft agent` loads about 540
// files (grpc-js, protobufjs, @opentelemetry/api, prom-client, cockatiel, execa, pino, ...);
// resolving, reading and compiling them one by one took 2-3x as long as one bundled file of
// the same code (docs/performance.md has the figures). The CLI stays unbundled. The bundle is
// CommonJS so that it can be run with a code cache (src/cli/agent-bundle.ts says why and how).
//
// cli/agent-bundle.ts uses the bundle only when it is at least as new as the compiled
// sources, so a plain `tsc` never runs stale code.
import { execFileSync } from 'node:child_process';
import { build } from 'esbuild';
import { readFileSync, writeFileSync } from 'node:fs';
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
 * the same definitions, without the parse. KV.Range's answers are decoded by weft's own
 * decoder of the same objects (src/store/range-decode.ts: a start lists every lease at once).
 * The agent's lease watch does not go through etcd3 at all (src/store/watch-stream.ts).
 */
const etcdProto = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const from = '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`,';
      if (!text.includes(from)) throw new Error(`etcd3 changed how it loads rpc.proto (${args.path}); update build/bundle-agent.mjs`);
      const protobuf = require('protobufjs');
      const proto = new protobuf.Root();
      // As proto-loader parses it for etcd3 (keepCase), so that field names match.
      proto.loadSync(join(etcd3, 'proto', 'rpc.proto'), { keepCase: true });
      const json = JSON.stringify(proto.toJSON());
      const range = proto.lookup('etcdserverpb.KV')?.methods?.Range;
      if (range?.responseType !== 'RangeResponse') throw new Error('etcd3 rpc.proto has no KV.Range returning RangeResponse; update build/bundle-agent.mjs');
      const services = 'const services = grpc.loadPackageDefinition(packageDefinition);';
      if (!text.includes(services)) throw new Error(`etcd3 changed how it makes its services (${args.path}); update build/bundle-agent.mjs`);
      const decoder = JSON.stringify(join(root, 'dist', 'store', 'range-decode.js'));
      const fast = `packageDefinition['etcdserverpb.KV'].Range.responseDeserialize = require(${decoder}).decodeRangeResponse;\n`;
      return { contents: text.replace(from, `(0, proto_loader_1.fromJSON)(${json},`).replace(services, fast + services), loader: 'js' };
    });
  },
};

/**
 * proto-loader builds, for every message and method of rpc.proto, a descriptor for gRPC
 * reflection (toDescriptor, FileDescriptorProto encodes: ~40 ms of an agent's start here).
 * Nothing on a client's path reads them (grpc-js uses each method's path and serializers), so
 * the bundle builds them on first read instead: the same values, later or never.
 */
/**
 * proto-loader's definition maker `fn(param, fileDescriptors)` as it is, and the same with its
 * descriptor built on first read: [from, to] for lazyDescriptors below.
 */
function lazyDefinition(fn, param, local, format) {
  const from = `function ${fn}(${param}, fileDescriptors) {
    const ${local} = ${param}.toDescriptor('proto3');
    return {
        format: 'Protocol Buffer 3 ${format}',
        type: ${local}.$type.toObject(${local}, descriptorOptions),
        fileDescriptorProtos: fileDescriptors,
    };
}`;
  const to = `function ${fn}(${param}, fileDescriptors) {
    let type;
    return {
        format: 'Protocol Buffer 3 ${format}',
        get type() {
            if (type === undefined) {
                descriptorOf();
                const ${local} = ${param}.toDescriptor('proto3');
                type = ${local}.$type.toObject(${local}, descriptorOptions);
            }
            return type;
        },
        get fileDescriptorProtos() { return fileDescriptors(); },
    };
}`;
  return [from, to];
}

const lazyDescriptors = {
  name: 'proto-loader-lazy-descriptors',
  setup(b) {
    // etcd3's proto-loader; grpc-js's own copy (for channelz, never loaded by the agent) stays as is.
    b.onLoad({ filter: /@grpc[\\/]proto-loader[\\/]build[\\/]src[\\/]index\.js$/ }, (args) => {
      if (/grpc-js[\\/]node_modules/.test(args.path)) return undefined;
      let text = readFileSync(args.path, 'utf8');
      const swaps = [
        lazyDefinition('createMessageDefinition', 'message', 'messageDescriptor', 'DescriptorProto'),
        lazyDefinition('createEnumDefinition', 'enumType', 'enumDescriptor', 'EnumDescriptorProto'),
        [
          `    const descriptorList = root.toDescriptor('proto3').file;
    const bufferList = descriptorList.map(value => Buffer.from(descriptor.FileDescriptorProto.encode(value).finish()));`,
          `    let files;
    const bufferList = () => (files ??= root.toDescriptor('proto3').file.map(value => Buffer.from(descriptorOf().FileDescriptorProto.encode(value).finish())));`,
        ],
        // protobufjs's descriptor extension (what toDescriptor needs), loaded with the first descriptor.
        [
          `const descriptor = require("protobufjs/ext/descriptor");`,
          `let descriptorExt;
const descriptorOf = () => (descriptorExt ??= require("protobufjs/ext/descriptor"));`,
        ],
        [`descriptor.FileDescriptorSet.decode(`, `descriptorOf().FileDescriptorSet.decode(`],
        [`descriptor.FileDescriptorSet.fromObject(`, `descriptorOf().FileDescriptorSet.fromObject(`],
      ];
      for (const [from, to] of swaps) {
        if (!text.includes(from)) throw new Error(`@grpc/proto-loader changed (${args.path}); update build/bundle-agent.mjs`);
        text = text.replace(from, to);
      }
      return { contents: text, loader: 'js' };
    });
  },
};

/**
 * etcd3 asks protobufjs for 64-bit integers as decimal strings (revisions, versions, lease
 * IDs: four per key-value), and long's toString divides its way through every digit in 32-bit
 * halves: ~20-30 ms of an agent's start at 5,000 leases. A value within +-2^53 (every
 * revision and version; not etcd's lease IDs) is exact as a double, so String() of it is the
 * same text.
 *
 * long also compiles a small WebAssembly module when it loads (native 64-bit multiply and
 * divide). That one module brings in V8's WebAssembly decoder and compiler for the process's
 * life: about 1 MB of an idle agent's RSS (the node binary's pages that run them, and the
 * engine's memory), for arithmetic the agent does a few times a minute (a lease ID printed,
 * a revision parsed). long's JavaScript path gives the same results (its own fallback where
 * WebAssembly is missing).
 */
const longToString = {
  name: 'long-fast-decimal',
  setup(b) {
    b.onLoad({ filter: /[\\/]long[\\/]umd[\\/]index\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const from = `LongPrototype.toString = function toString(radix) {
      radix = radix || 10;`;
      if (!text.includes(from)) throw new Error(`long changed how it prints (${args.path}); update build/bundle-agent.mjs`);
      const to = `${from}
      if (radix === 10) {
        const high = this.unsigned ? this.high >>> 0 : this.high;
        if (high < 0x200000 && high >= -0x200000) return String(this.toNumber());
      }`;
      const wasm = `var wasm = null;
    try {
      wasm = new WebAssembly.Instance(`;
      if (!text.includes(wasm)) throw new Error(`long changed how it loads its WebAssembly module (${args.path}); update build/bundle-agent.mjs`);
      const noWasm = `var wasm = null;
    if (false) try {
      wasm = new WebAssembly.Instance(`;
      return { contents: text.replace(from, to).replace(wasm, noWasm), loader: 'js' };
    });
  },
};

/**
 * grpc-js's connection backoff adds milliseconds to a Date through the local-time
 * getMilliseconds/setMilliseconds. The first local-time getter makes V8 detect the host's time
 * zone through ICU, whose tables then stay resident (~0.3 MB of the node binary's pages in every
 * agent; docs/performance.md, the idle RSS's third pass). The UTC pair gives the same instant
 * (and the right one across a daylight-saving change).
 */
const grpcUtcBackoff = {
  name: 'grpc-js-utc-backoff',
  setup(b) {
    b.onLoad({ filter: /@grpc[\\/]grpc-js[\\/]build[\\/]src[\\/]backoff-timeout\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const swaps = [
        ['this.endTime.setMilliseconds(this.endTime.getMilliseconds() + delay);', 'this.endTime.setUTCMilliseconds(this.endTime.getUTCMilliseconds() + delay);'],
        ['newEndTime.setMilliseconds(newEndTime.getMilliseconds() + this.nextDelay);', 'newEndTime.setUTCMilliseconds(newEndTime.getUTCMilliseconds() + this.nextDelay);'],
      ];
      let out = text;
      for (const [from, to] of swaps) {
        if (!out.includes(from)) throw new Error(`grpc-js changed its backoff timer (${args.path}); update build/bundle-agent.mjs`);
        out = out.replace(from, to);
      }
      if (/\.(get|set)Milliseconds\(/.test(out)) throw new Error(`grpc-js's backoff timer has another local-time call (${args.path}); update build/bundle-agent.mjs`);
      return { contents: out, loader: 'js' };
    });
  },
};

/**
 * src/store/etcd3-module.ts as a module that loads etcd3 on its first call (that file says
 * why): esbuild bundles a require() where it is written, so etcd3's code stays in the bundle
 * but runs only when the agent first needs it.
 */
const lazyEtcd3 = {
  name: 'lazy-etcd3',
  setup(b) {
    b.onLoad({ filter: /dist[\\/]store[\\/]etcd3-module\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      const exported = [...text.matchAll(/^export function (\w+)/gm)].map((m) => m[1]).sort().join(',');
      if (exported !== 'etcd3IfLoaded,etcd3Module') throw new Error(`${args.path} exports ${exported}; update build/bundle-agent.mjs`);
      return {
        contents: 'let loaded;\nexport function etcd3Module() { return (loaded ??= require("etcd3")); }\nexport function etcd3IfLoaded() { return loaded; }\n',
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
  },
};

await build({
  entryPoints: [join(root, 'dist/agent/main.js')],
  outfile: join(root, 'dist/weft-agent.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // weft's modules are ES modules: strict mode, as they were, and import.meta.url is the
  // bundle's own URL (dist/, where the compiled modules sit too).
  banner: { js: '"use strict"; const __weftUrl = require("node:url").pathToFileURL(__filename).href;' },
  define: { 'import.meta.url': '__weftUrl' },
  plugins: [etcdProto, lazyDescriptors, longToString, grpcUtcBackoff, lazyEtcd3],
  // V8 keeps a script's source for as long as the script lives, one byte per character only
  // when every character is ASCII: one non-ASCII character made the 2 MB bundle a 4 MB
  // two-byte string in every agent. esbuild escapes strings, regular expressions and names;
  // what is left is in comments, escaped below.
  charset: 'ascii',
  // The same source, minified (names kept, for stacks and `err.name`): V8 keeps it in every
  // agent's heap for as long as it runs, 2.2 MB as written against 1.05 MB minified.
  minify: true,
  keepNames: true,
  logLevel: 'warning',
});

{
  const bundle = join(root, 'dist/weft-agent.cjs');
  const text = readFileSync(bundle, 'utf8');
  writeFileSync(bundle, text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`));
}

// The code cache, made by bin/weft itself: V8 refuses a cache made under other flags (bin/weft
// may give node some) or by another node version, and the bundle then compiles as it would
// without one (src/cli/agent-bundle.ts).
execFileSync(join(root, 'bin', 'weft'), ['agent', '--version'], {
  cwd: root,
  env: { ...process.env, WEFT_AGENT_CODE_CACHE: 'write' },
  stdio: ['ignore', 'ignore', 'pipe'],
});
