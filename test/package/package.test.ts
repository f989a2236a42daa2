// What `npm pack` ships, and that the packed tarball installs into a working `weft`.
// The package is the product: the CLI launcher, the compiled modules of src/ (not the
// testbed, which is the network-namespace harness behind `make demo`, `make soak` and the
// benches), and the CRDs. Anything else in the tarball (a test, the demo, a stale module
// whose source is gone) fails here. Needs the build in dist/ (`make test` builds first).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.js';

/** Folders of src/ that are not part of the product: never packed. */
const NOT_PACKED = ['testbed'];
/** Files npm adds from the package root whatever `files` says. */
const ALWAYS = ['package.json', 'README.md'];
const OPTIONAL_ROOT = ['LICENSE', 'NOTICE'];
/** `weft agent` bundled into one file by build/bundle-agent.mjs, and its V8 code cache (it starts faster). */
const BUNDLES = ['dist/weft-agent.cjs', 'dist/weft-agent.cjs.cache'];
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** The files the package should hold: computed from the sources, not from dist/. */
function expectedPackFiles(repo: string): Set<string> {
  const expected = new Set([...ALWAYS, 'bin/weft', ...BUNDLES]);
  for (const f of readdirSync(join(repo, 'crds'))) if (f.endsWith('.yaml')) expected.add(`crds/${f}`);
  for (const file of walk(join(repo, 'src'))) {
    const rel = relative(join(repo, 'src'), file);
    if (!rel.endsWith('.ts') || NOT_PACKED.includes(rel.split('/')[0]!)) continue;
    const js = `dist/${rel.replace(/\.ts$/, '.js')}`;
    expected.add(js).add(`${js}.map`);
  }
  return expected;
}

/** What is packed but not expected, and what is expected but not packed. */
function comparePack(packed: string[], expected: Set<string>): { unexpected: string[]; missing: string[] } {
  const got = new Set(packed);
  return {
    unexpected: packed.filter((p) => !expected.has(p) && !OPTIONAL_ROOT.includes(p)).sort(),
    missing: [...expected].filter((p) => !got.has(p)).sort(),
  };
}

// --ignore-scripts: `prepack` rebuilds dist/, which other test files read at the same time.
const NPM_QUIET = ['--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'];

describe('npm pack', () => {
  it('ships the launcher, the compiled product modules and the CRDs, and nothing else', async () => {
    expect(existsSync(join(REPO, 'dist/cli/main.js')), 'dist/ is missing: run `npx tsc -p .` first').toBe(true);
    const r = await execa('npm', ['pack', '--dry-run', '--json', ...NPM_QUIET], { cwd: REPO });
    const [pack] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
    const { unexpected, missing } = comparePack(pack!.files.map((f) => f.path), expectedPackFiles(REPO));
    expect(unexpected, 'packed but not product code (test, demo or stale build output)').toEqual([]);
    expect(missing, 'product files missing from the package (stale dist/? run `npx tsc -p .`)').toEqual([]);
  });

  it('the comparison flags testbed, test and stale files, and missing modules', () => {
    const expected = new Set(['package.json', 'dist/cli/main.js']);
    expect(comparePack(['package.json', 'LICENSE', 'dist/testbed/demo.js', 'test/x.test.ts', 'dist/gone.js'], expected)).toEqual({
      unexpected: ['dist/gone.js', 'dist/testbed/demo.js', 'test/x.test.ts'],
      missing: ['dist/cli/main.js'],
    });
    const real = expectedPackFiles(REPO);
    expect(real.has('dist/cli/main.js') && real.has('bin/weft') && real.has('crds/network.yaml')).toBe(true);
    expect([...real].filter((p) => p.includes('testbed'))).toEqual([]);
  });
});

describe('npm install -g of the packed tarball', () => {
  let dir = '';
  let weftBin = '';
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-pack-'));
    const packed = await execa('npm', ['pack', '--json', '--pack-destination', dir, ...NPM_QUIET], { cwd: REPO });
    const [pack] = JSON.parse(packed.stdout) as { filename: string }[];
    // Dependencies come from the local npm cache when it has them, else from the registry.
    // Outside the repository, so no lock file and no node_modules of ours can help it.
    await execa('npm', ['install', '-g', '--prefix', join(dir, 'prefix'), '--prefer-offline', ...NPM_QUIET, join(dir, pack!.filename)], {
      cwd: dir,
    });
    weftBin = join(dir, 'prefix', 'bin', 'weft');
  }, 180_000);
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('gives a weft that reports its version', async () => {
    const r = await execa(weftBin, ['version'], { cwd: dir, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.trim()).toBe(`weft ${VERSION}`);
  });

  it('gives a weft whose agent prints its help (every module it loads is installed)', async () => {
    const r = await execa(weftBin, ['agent', '--help'], { cwd: dir, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: weft agent/);
    expect(r.stdout).toContain('--etcd-endpoints');
  });
});
