// Where the repository is, found from this module's own location so that the same code works
// from src/testbed (vitest runs the TypeScript) and from dist/testbed (`make demo` runs plain node).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WEFT_BIN = resolve(REPO_ROOT, 'bin', 'weft');

/**
 * The node flags a weft executable's first line gives (`#!/usr/bin/env -S [VAR=value ...] node
 * FLAGS`: the V8 memory settings of a long-running agent), so that the testbed, which starts
 * it as `node FLAGS <bin> agent`, runs the agent as `npm install -g` and systemd do.
 */
export function nodeFlagsOf(bin: string): string[] {
  return launchOf(bin).flags;
}

/** The environment the same line sets for node (the C library's malloc settings), as nodeFlagsOf. */
export function nodeEnvOf(bin: string): Record<string, string> {
  return launchOf(bin).env;
}

/**
 * The whole environment of an agent the testbed starts on one of its hosts: what a host's
 * agent has under the shipped unit (examples/deploy/weft-agent.service: systemd's clean
 * environment plus /etc/weft/weft-agent.env), not the shell that runs the tests. So PATH (the
 * agent runs ip, bridge and iptables), weft's and flanneld's own variables (its flags, e.g. a
 * test's WEFT_LOG_LEVEL), the variables bin's first line sets, and `extra`. The rest of the
 * caller's environment stays out: a NODE_EXTRA_CA_CERTS there, for one, makes every node
 * process parse that bundle before running any JavaScript (~55 ms of CPU for the 140-odd
 * certificates of /etc/ssl/certs/ca-certificates.crt on the 2-core bench VM), which no host
 * agent pays unless its operator set it (docs/performance.md).
 */
export function agentEnvOf(bin: string, extra: Record<string, string> = {}, from: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(from)) {
    if (v !== undefined && (k === 'PATH' || k.startsWith('WEFT_') || k.startsWith('FLANNELD_'))) env[k] = v;
  }
  return { ...env, ...nodeEnvOf(bin), ...extra };
}

function launchOf(bin: string): { flags: string[]; env: Record<string, string> } {
  let first: string;
  try {
    first = readFileSync(bin, 'utf8').split('\n', 1)[0]!;
  } catch {
    return { flags: [], env: {} };
  }
  const m = /^#!\S*env -S((?: [A-Z_][A-Z0-9_]*=\S+)*) node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) return { flags: [], env: {} };
  const env: Record<string, string> = {};
  for (const word of m[1]!.trim().split(' ').filter(Boolean)) {
    const at = word.indexOf('=');
    env[word.slice(0, at)] = word.slice(at + 1);
  }
  return { flags: m[2]!.trim().split(' ').filter(Boolean), env };
}
