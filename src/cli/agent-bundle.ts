// `weft agent`'s code as `make build` leaves it: one CommonJS file (dist/weft-agent.cjs, from
// build/bundle-agent.mjs) and V8's code cache for it (dist/weft-agent.cjs.cache).
//
// Why: most of an agent's start-up is V8 compiling JavaScript: parsing the 2 MB bundle and
// compiling each function it runs while the modules initialise (grpc-js, protobufjs, etcd3,
// pino, ...). A code cache made at build time, after those initialisers ran, hands V8 the
// compiled functions; loading the bundle went from ~125 to ~65 ms of CPU here. Node 20 has no
// code cache for ES modules (module.enableCompileCache is Node 22), so the bundle is CommonJS
// run through vm.Script, which takes one. A cache V8 refuses costs nothing but the time it
// would have saved: the code compiles as usual. V8 refuses a cache made by another Node
// version or under other V8 flags (any: a heap size too), so the build makes it by running
// bin/weft itself (WEFT_AGENT_CODE_CACHE=write), with whatever flags bin/weft gives node.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants, Script } from 'node:vm';

type AgentModule = typeof import('../agent/main.js');

const BUNDLE = fileURLToPath(new URL('../weft-agent.cjs', import.meta.url));
const CACHE = `${BUNDLE}.cache`;
const COMPILED = fileURLToPath(new URL('../agent/main.js', import.meta.url));

/** Runs the bundle's module code; returns its exports and the script (for its cache). */
function run(file: string, cachedData: Buffer | undefined): { exports: AgentModule; script: Script } {
  // Node's own CommonJS wrapper, so the bundle sees what a required file sees.
  const source = `(function (exports, require, module, __filename, __dirname) { ${readFileSync(file, 'utf8')}\n});`;
  const script = new Script(source, {
    filename: file,
    ...(cachedData ? { cachedData } : {}),
    // The bundle has no dynamic import(); should a dependency gain one, it resolves as usual.
    ...(constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER ? { importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER } : {}),
  });
  const module = { exports: {} as AgentModule };
  (script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  return { exports: module.exports, script };
}

function readCache(): Buffer | undefined {
  try {
    return readFileSync(CACHE);
  } catch {
    return undefined;
  }
}

/**
 * The agent's code: the bundle when it is at least as new as the compiled agent (a plain
 * `tsc` must never run stale code), else the compiled modules. WEFT_AGENT_CODE_CACHE=write
 * (the build) writes the bundle's code cache after its module initialisers ran, so that their
 * compiled code is in it; =report says on stderr whether V8 took the cache (the tests).
 */
export async function loadAgent(env: NodeJS.ProcessEnv = process.env): Promise<AgentModule> {
  let fresh = false;
  try {
    fresh = statSync(BUNDLE).mtimeMs >= statSync(COMPILED).mtimeMs;
  } catch {
    // No bundle (a plain `tsc` build): the modules.
  }
  const mode = env.WEFT_AGENT_CODE_CACHE;
  if (!fresh) {
    if (mode) process.stderr.write('weft: agent code cache: no fresh bundle\n');
    return (await import('../agent/main.js')) as AgentModule;
  }
  const cache = mode === 'write' ? undefined : readCache();
  const { exports, script } = run(BUNDLE, cache);
  if (mode === 'write') {
    exports.loadDeferredModules();
    writeFileSync(CACHE, script.createCachedData());
  }
  if (mode === 'report') process.stderr.write(`weft: agent code cache: ${!cache ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted'}\n`);
  return exports;
}
