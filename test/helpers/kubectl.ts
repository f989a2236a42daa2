// The real kubectl against a `weft serve`: the client whose minor matches the server's
// /version (kubectl.1.<minor> beside a dispatcher, as on these machines), else kubectl on PATH
// (Debian's kubernetes-client). Each run gets its own discovery cache directory.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { KUBE_MINOR } from '../../src/serve/discovery.js';

const VERSIONED = [`/usr/lib/google-cloud-sdk/bin/kubectl.1.${KUBE_MINOR}`, `/usr/bin/kubectl.1.${KUBE_MINOR}`];
export const KUBECTL = process.env.WEFT_TEST_KUBECTL ?? VERSIONED.find((p) => existsSync(p)) ?? 'kubectl';

/**
 * Fails with what to install when there is no kubectl at all (a missing binary would
 * otherwise surface as a spawn error in the middle of a test).
 */
export function requireKubectl(): void {
  const found = KUBECTL.includes('/') ? existsSync(KUBECTL) : (process.env.PATH ?? '').split(':').some((d) => d && existsSync(join(d, KUBECTL)));
  if (!found) throw new Error(`test/serve drives the real kubectl (1.29 or later; 1.${KUBE_MINOR} preferred) and none was found: install it, or set WEFT_TEST_KUBECTL`);
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Kubectl {
  dir: string;
  kubeconfig: string;
  run(args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<KubectlResult>;
  /** A long-running kubectl (get -w): its output so far, and a way to stop it. */
  start(args: string[]): { output(): string; stop(): void };
  remove(): void;
}

/**
 * kubectl bound to one kubeconfig (its text), with a scratch directory for files and cache;
 * inside a network namespace when netns is given.
 */
export function kubectlFor(kubeconfigText: string, opts: { netns?: string } = {}): Kubectl {
  const dir = mkdtempSync(join(tmpdir(), 'weft-kubectl-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText, { mode: 0o600 });
  const [cmd, pre] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, KUBECTL]] : [KUBECTL, []];
  const base = [...pre, '--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache')];
  const running = new Set<ReturnType<typeof execa>>();
  return {
    dir,
    kubeconfig,
    start: (args) => {
      const proc = execa(cmd, [...base, ...args], { reject: false, env: { HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false, all: true });
      running.add(proc);
      let out = '';
      proc.all!.on('data', (d: Buffer) => (out += d.toString()));
      return {
        output: () => out,
        stop: () => {
          proc.kill('SIGKILL');
          running.delete(proc);
        },
      };
    },
    run: async (args, opts = {}) => {
      const r = await execa(cmd, [...base, ...args], {
        reject: false,
        input: opts.input ?? '',
        env: { HOME: dir, PATH: process.env.PATH ?? '/usr/bin:/bin', ...(opts.env ?? {}) },
        extendEnv: false,
        timeout: opts.timeoutMs ?? 30_000,
      });
      return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    remove: () => {
      for (const p of running) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
