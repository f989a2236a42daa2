// Where the repository is, found from this module's own location so that the same code works
// from src/testbed (vitest runs the TypeScript) and from dist/testbed (`make demo` runs plain node).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEFT_BIN = resolve(REPO_ROOT, 'bin', 'weft');

/**
 * The node flags a weft executable's first line gives (`#!/usr/bin/env -S node FLAGS`: the V8
 * memory settings of a long-running agent), so that the testbed, which starts it as
 * `node FLAGS <bin> agent`, runs the agent as `npm install -g` and systemd do.
 */
export function nodeFlagsOf(bin: string): string[] {
  let first: string;
  try {
    first = readFileSync(bin, 'utf8').split('\n', 1)[0]!;
  } catch {
    return [];
  }
  const m = /^#!\S*env -S node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  return m ? m[1]!.trim().split(' ').filter(Boolean) : [];
}
