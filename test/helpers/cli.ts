// Running the weft CLI in tests: in-process through runCli (fast, most tests), or as the
// real `node bin/weft` process (exit codes, stdout/stderr separation, startup), which needs
// the build in dist/ (`make test` builds first; run `npx tsc -p .` before vitest alone).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { HostNetwork } from '../../src/api/network-safety.js';
import { runCli } from '../../src/cli/run.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = `${REPO}bin/weft`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  stdin?: string;
  env?: Record<string, string | undefined>;
  now?: () => Date;
  /** The applying host's interface networks (default: none, so tests do not depend on the machine). */
  hostNetworks?: () => HostNetwork[];
}

/** The CLI in this process, with captured output. */
export async function weft(argv: string[], opts: CliOptions = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    readStdin: async () => opts.stdin ?? '',
    env: opts.env ?? {},
    ...(opts.now ? { now: opts.now } : {}),
    hostNetworks: opts.hostNetworks ?? (() => []),
  });
  return { code, stdout, stderr };
}

/** The built CLI as a child process. */
export async function weftProcess(argv: string[], opts: CliOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  if (!existsSync(`${REPO}dist/cli/main.js`)) {
    throw new Error('dist/ is missing: run `npx tsc -p .` (make test does) before the spawned CLI tests');
  }
  const r = await execa('node', [BIN, ...argv], {
    reject: false,
    input: opts.stdin ?? '',
    env: childEnv(opts.env ?? {}),
    extendEnv: false,
    timeout: opts.timeoutMs ?? 20_000,
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A unique etcd prefix per test, so tests sharing one etcd never see each other's keys. */
let counter = 0;
export function testPrefix(label = 't'): string {
  return `/weft-test/${process.pid}-${Date.now().toString(36)}-${counter++}-${label}/network`;
}

/** Flags that point the CLI at one etcd and one prefix. */
export function etcdFlags(endpoint: string, prefix: string): string[] {
  return ['--etcd-endpoints', endpoint, '--etcd-prefix', prefix];
}

/** The parent's environment without weft's own variables, plus the given ones. */
function childEnv(extra: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) {
    if (v !== undefined && !(k.startsWith('WEFT_') && !(k in extra))) env[k] = v;
  }
  return env;
}
