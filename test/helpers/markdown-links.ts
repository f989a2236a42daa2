// Checks the relative links and anchors of Markdown pages the way GitHub renders them: a
// link to a file must name a file of the repository, and an anchor must be the slug of a
// heading in the target page (github-slugger: GitHub's own rules, "-1", "-2" for repeats)
// or an explicit <a name/id>. External links (http:, mailto:) are not fetched.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import GithubSlugger from 'github-slugger';

export interface Link {
  line: number;
  target: string;
}

export interface LinkProblem {
  file: string;
  line: number;
  target: string;
  problem: string;
}

/** For each line, whether it belongs to a fenced code block (fences included). */
function fencedLines(lines: string[]): boolean[] {
  let fence: string | undefined;
  return lines.map((line) => {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1]![0] === fence[0] && m[1]!.length >= fence.length && line.trim() === m[1]) fence = undefined;
      return true;
    }
    if (m) fence = m[1];
    return m !== null;
  });
}

/** Blanks out fenced code blocks and inline code, keeping line numbers. */
function withoutCode(md: string): string {
  const lines = md.split('\n');
  const fenced = fencedLines(lines);
  return lines.map((line, i) => (fenced[i] ? '' : line.replace(/(`+)[^`]*?\1/g, (s) => ' '.repeat(s.length)))).join('\n');
}

/**
 * Heading text as GitHub renders it: links give their text, HTML tags vanish. (The slugger
 * drops the marks of code and * emphasis itself; _ stays, as GitHub keeps it in slugs.)
 */
function headingText(raw: string): string {
  return raw
    .replace(/\s+#+\s*$/, '') // closing hashes
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]+>/g, '');
}

/** Every anchor a page offers: heading slugs and explicit HTML ids/names. */
export function anchorsOf(md: string): Set<string> {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  const lines = md.split('\n');
  const fenced = fencedLines(lines);
  lines.forEach((line, i) => {
    if (fenced[i]) return;
    const h = /^\s{0,3}#{1,6}\s+(.*)$/.exec(line);
    if (h) anchors.add(slugger.slug(headingText(h[1]!)));
    for (const m of line.matchAll(/<a\s[^>]*\b(?:name|id)="([^"]+)"/g)) anchors.add(m[1]!);
  });
  return anchors;
}

/** The link targets of a page with their line numbers: inline links, images and references. */
export function linksOf(md: string): Link[] {
  const text = withoutCode(md);
  const lineAt = (index: number) => text.slice(0, index).split('\n').length;
  const links: Link[] = [];
  // [text](target "title"): text may span lines; <target> form allowed.
  for (const m of text.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g)) {
    links.push({ line: lineAt(m.index! + 1), target: m[1]!.replace(/^<|>$/g, '') });
  }
  for (const m of text.matchAll(/^[ \t]{0,3}\[[^\]]+\]:[ \t]*(\S+)/gm)) links.push({ line: lineAt(m.index!), target: m[1]! });
  for (const m of text.matchAll(/<a\s[^>]*\bhref="([^"]+)"/g)) links.push({ line: lineAt(m.index!), target: m[1]! });
  return links.sort((a, b) => a.line - b.line);
}

const EXTERNAL = /^[a-z][a-z0-9+.-]*:/i;
/** GitHub's line anchors on a non-Markdown file: #L10 or #L10-L20. */
const LINE_ANCHOR = /^L\d+(-L\d+)?$/;

/**
 * Problems with the links of one page. `read` gives another page's text (so tests can check
 * a sample without files); `root` is the repository: a link may not leave it.
 */
export function checkPage(
  file: string,
  md: string,
  root: string,
  read: (path: string) => string | undefined = readPage,
): LinkProblem[] {
  const problems: LinkProblem[] = [];
  for (const { line, target } of linksOf(md)) {
    if (EXTERNAL.test(target)) continue;
    const say = (problem: string) => problems.push({ file: relative(root, file), line, target, problem });
    const hash = target.indexOf('#');
    const pathPart = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : decodeURIComponent(target.slice(hash + 1));
    const dest = pathPart === '' ? file : pathPart.startsWith('/') ? join(root, pathPart) : resolve(dirname(file), pathPart);
    if (relative(root, dest).startsWith('..')) {
      say('points outside the repository');
      continue;
    }
    const page = dest === file ? md : read(dest);
    if (page === undefined && !existsSync(dest)) {
      say(`no such file: ${relative(root, dest)}`);
      continue;
    }
    if (anchor === undefined || anchor === '') continue;
    if (dest.endsWith('.md') && page !== undefined) {
      if (!anchorsOf(page).has(anchor)) say(`no heading or anchor "#${anchor}" in ${relative(root, dest)}`);
    } else if (!LINE_ANCHOR.test(anchor)) {
      say(`anchor "#${anchor}" on a file that is not a Markdown page`);
    }
  }
  return problems;
}

function readPage(path: string): string | undefined {
  if (!existsSync(path) || !statSync(path).isFile()) return undefined;
  return readFileSync(path, 'utf8');
}
