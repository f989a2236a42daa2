// Every relative link and anchor in README.md and docs/ leads somewhere: a file of the
// repository, and a heading (by GitHub's slug rules) or explicit anchor of the page.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from '../helpers/cli.js';
import { anchorsOf, checkPage, linksOf } from '../helpers/markdown-links.js';

function pages(): string[] {
  const docs = join(REPO, 'docs');
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  return [join(REPO, 'README.md'), ...walk(docs)];
}

describe('links in README.md and docs/', () => {
  it('all lead to a file of the repository and to a heading or anchor that exists', () => {
    const files = pages();
    expect(files.length).toBeGreaterThan(1);
    const problems = files.flatMap((f) => checkPage(f, readFileSync(f, 'utf8'), REPO));
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.target}: ${p.problem}`)).toEqual([]);
  });
});

describe('the link checker', () => {
  const root = '/repo';
  const other = ['# Other page', '', '## Flags and `--etcd-endpoints`', '## Flags and `--etcd-endpoints`', '<a name="custom"></a>'].join('\n');
  const read = (path: string) => (path === '/repo/docs/other.md' ? other : undefined);

  it('gives GitHub slugs: lower case, punctuation dropped, spaces to dashes, repeats numbered', () => {
    const md = '# weft\n## Beside flanneld, and replacing it\n### Node status\n## Node status\n```\n# not a heading\n```\n## `weft get` (and -o wide)\n';
    expect([...anchorsOf(md)]).toEqual(['weft', 'beside-flanneld-and-replacing-it', 'node-status', 'node-status-1', 'weft-get-and--o-wide']);
  });

  it('finds inline links spanning lines, images and reference definitions, not code', () => {
    const md = 'See [the\nstatus](#node-status) and ![x](img.png).\n\n`[not](a-link)`\n```\n[nor](this)\n```\n[ref]: docs/other.md#custom\n';
    expect(linksOf(md)).toEqual([
      { line: 2, target: '#node-status' },
      { line: 2, target: 'img.png' },
      { line: 8, target: 'docs/other.md#custom' },
    ]);
  });

  it('accepts good links and reports each broken one with its line', () => {
    const md = [
      '# Top',
      '[ok](#top) [ok](docs/other.md) [ok](docs/other.md#flags-and---etcd-endpoints-1) [ok](docs/other.md#custom)',
      '[ok](https://example.com/#anything) [ok](mailto:x@example.com)',
      '[bad anchor](#nowhere)',
      '[bad file](docs/missing.md)',
      '[bad anchor elsewhere](docs/other.md#flags)',
      '[outside](../shared/notes.md)',
    ].join('\n');
    const problems = checkPage('/repo/README.md', md, root, read).map((p) => `${p.line} ${p.target}: ${p.problem}`);
    expect(problems).toEqual([
      '4 #nowhere: no heading or anchor "#nowhere" in README.md',
      '5 docs/missing.md: no such file: docs/missing.md',
      '6 docs/other.md#flags: no heading or anchor "#flags" in docs/other.md',
      '7 ../shared/notes.md: points outside the repository',
    ]);
  });
});
