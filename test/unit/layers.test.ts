// The direction of imports inside src/, read from the sources (TypeScript's own pre-parser,
// so type-only and dynamic imports count too):
//
//   alloc -> api -> store -> {agent, cli, control, serve}      dataplane: used by agent only
//
// An arrow may only point to a layer below (or stay in its folder). backoff.ts, iso-time.ts, log.ts,
// printable.ts and version.ts are leaves anyone may use. Nothing in src/ imports the testbed (it is test and
// demo code, not shipped), and only src/store talks to etcd3. Known violations are listed in
// KNOWN below, each to be removed by the change that fixes it: the test fails on any new
// violation and on a listed one that no longer exists, so the list can only shrink.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.js';

const SRC = join(REPO, 'src');

/** Each folder of src/ and the folders it may import from (besides itself and the leaves). */
const MAY_IMPORT: Record<string, string[]> = {
  alloc: [],
  api: ['alloc'],
  store: ['alloc', 'api'],
  // The kernel side knows addresses and the network's settings, never etcd or the agent.
  dataplane: ['alloc', 'api'],
  agent: ['alloc', 'api', 'store', 'dataplane'],
  control: ['alloc', 'api', 'store'],
  cli: ['alloc', 'api', 'store', 'control'],
  serve: ['alloc', 'api', 'store', 'control'],
  // The namespace harness behind make demo/soak/bench drives the product from outside.
  testbed: ['alloc', 'api', 'store', 'dataplane', 'agent', 'cli', 'control', 'serve'],
};
/** Files at the top of src/ that any layer may import; they import no other layer (but each other). */
const LEAVES = ['backoff.ts', 'iso-time.ts', 'log.ts', 'printable.ts', 'version.ts'];
/**
 * The weft binary is the CLI: it hands `weft agent` (and `weft serve`) to that program's
 * entry point, and `weft help serve` prints that program's help text. Only these files of
 * another top-level program may be imported by cli/.
 */
const ENTRY_POINTS = ['agent/main.ts', 'serve/main.ts', 'serve/help.ts'];
/** Only the store speaks etcd. */
const ETCD_PACKAGES = ['etcd3'];
const ETCD_ALLOWED = ['store'];

/**
 * Known violations, as "from -> to" (src-relative paths, or a package name). Each goes when
 * its fix lands. (agent/lease-watch.ts -> etcd3 went when the watch moved behind the store.)
 */
const KNOWN = new Set<string>([
  // (serve/kinds.ts -> cli/print.ts and serve/main.ts -> cli/help.ts went when the table
  // cells moved to control/columns.ts and weft serve got its own help text.)
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

interface Edge {
  from: string;
  to: string;
}

/** Every import of every file of src/: relative ones resolved to src-relative .ts paths, packages by name. */
function importGraph(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sources(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const from = relative(SRC, file);
    for (const { fileName } of info.importedFiles) {
      if (fileName.startsWith('.')) {
        edges.push({ from, to: relative(SRC, resolve(dirname(file), fileName)).replace(/\.js$/, '.ts') });
      } else if (!fileName.startsWith('node:')) {
        edges.push({ from, to: fileName.startsWith('@') ? fileName.split('/').slice(0, 2).join('/') : fileName.split('/')[0]! });
      }
    }
  }
  return edges;
}

const folderOf = (path: string) => (path.includes('/') ? path.split('/')[0]! : path);

/** Why an edge breaks the rules, or undefined when it keeps them. */
function violation({ from, to }: Edge): string | undefined {
  const src = folderOf(from);
  if (!to.endsWith('.ts')) {
    if (ETCD_PACKAGES.includes(to) && !ETCD_ALLOWED.includes(src)) return `only ${ETCD_ALLOWED.join(', ')} may import ${to}`;
    return undefined;
  }
  const dst = folderOf(to);
  if (src === dst) return undefined;
  if (LEAVES.includes(dst)) return undefined;
  if (LEAVES.includes(src)) return `${src} is a leaf and imports nothing from src/ but other leaves`;
  if (dst === 'testbed') return 'nothing in src/ imports the testbed';
  if (!(src in MAY_IMPORT)) return `src/${src} has no place in the layers: add it to MAY_IMPORT`;
  if (!(dst in MAY_IMPORT)) return `src/${dst} has no place in the layers: add it to MAY_IMPORT`;
  if (src === 'cli' && ENTRY_POINTS.includes(to)) return undefined;
  if (!MAY_IMPORT[src]!.includes(dst)) return `${src} may import only ${[...MAY_IMPORT[src]!, 'itself'].join(', ')}`;
  return undefined;
}

describe('the import graph of src/', () => {
  const edges = importGraph();
  const key = (e: Edge) => `${e.from} -> ${e.to}`;

  it('reads the real imports (relative, type-only, dynamic and packages)', () => {
    const keys = new Set(edges.map(key));
    expect(keys).toContain('cli/agent-bundle.ts -> agent/main.ts'); // import('../agent/main.js')
    expect(keys).toContain('cli/print.ts -> store/store.ts'); // import type
    expect(keys).toContain('store/store.ts -> etcd3');
    for (const e of edges) if (e.to.endsWith('.ts')) expect(existsIn(e.to), key(e)).toBe(true);
  });

  it('has no arrow against the layers beyond the known list', () => {
    const found = edges.filter((e) => violation(e) !== undefined && !KNOWN.has(key(e)));
    expect(found.map((e) => `${key(e)}: ${violation(e)}`)).toEqual([]);
  });

  it('still has every listed violation (remove the fixed ones from KNOWN)', () => {
    const present = new Set(edges.filter((e) => violation(e) !== undefined).map(key));
    expect([...KNOWN].filter((k) => !present.has(k))).toEqual([]);
  });

  it('catches arrows back, testbed and etcd3 imports, and unknown folders', () => {
    expect(violation({ from: 'alloc/cidr.ts', to: 'api/types.ts' })).toMatch(/alloc may import only itself/);
    expect(violation({ from: 'store/store.ts', to: 'agent/agent.ts' })).toMatch(/store may import only/);
    expect(violation({ from: 'dataplane/vxlan.ts', to: 'store/store.ts' })).toMatch(/dataplane may import only/);
    expect(violation({ from: 'cli/print.ts', to: 'dataplane/vxlan.ts' })).toMatch(/cli may import only/);
    expect(violation({ from: 'cli/run.ts', to: 'agent/agent.ts' })).toMatch(/cli may import only/);
    expect(violation({ from: 'agent/agent.ts', to: 'testbed/poll.ts' })).toMatch(/testbed/);
    expect(violation({ from: 'cli/run.ts', to: 'etcd3' })).toMatch(/only store may import etcd3/);
    expect(violation({ from: 'log.ts', to: 'api/types.ts' })).toMatch(/leaf/);
    expect(violation({ from: 'newthing/x.ts', to: 'api/types.ts' })).toMatch(/no place in the layers/);
    expect(violation({ from: 'cli/main.ts', to: 'agent/main.ts' })).toBeUndefined();
    expect(violation({ from: 'agent/agent.ts', to: 'log.ts' })).toBeUndefined();
    expect(violation({ from: 'testbed/topology.ts', to: 'alloc/cidr.ts' })).toBeUndefined();
  });
});

function existsIn(path: string): boolean {
  try {
    readFileSync(join(SRC, path));
    return true;
  } catch {
    return false;
  }
}
