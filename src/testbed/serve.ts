// `weft serve` inside a testbed namespace (next to etcd, in the underlay), and kubectl run
// from the same namespace against the kubeconfig it writes: for `make demo` and the tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execIn, type RunResult } from './netns.js';
import { WEFT_BIN } from './paths.js';
import { poll, PollAbort } from './poll.js';

export interface ServeInNamespace {
  kubeconfig: string;
  logPath: string;
  /** kubectl ARGS... --kubeconfig <kubeconfig>, run in the namespace. */
  kubectl(args: string[]): Promise<RunResult>;
  /** A long-running kubectl (get -w): its output so far, and a way to stop it. */
  startKubectl(args: string[]): { output(): string; stop(): void };
  /** SIGTERM, and the exit code (SIGKILL after graceMs). */
  stop(graceMs?: number): Promise<number | null>;
}

export async function startServeIn(
  ns: string,
  etcdFlags: string[],
  workDir: string,
  opts: { kubectl?: string; weftBin?: string; extraArgs?: string[] } = {},
): Promise<ServeInNamespace> {
  const kubeconfig = join(workDir, 'serve.kubeconfig');
  const logPath = join(workDir, 'serve.log');
  const kubectl = opts.kubectl ?? 'kubectl';
  const fd = openSync(logPath, 'a');
  const proc: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, opts.weftBin ?? WEFT_BIN, 'serve', ...etcdFlags, '--secure-port', '0', '--write-kubeconfig', kubeconfig, ...(opts.extraArgs ?? [])],
    { stdio: ['ignore', fd, fd] },
  );
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const watchers = new Set<ChildProcess>();
  const stop = async (graceMs = 5000) => {
    for (const w of watchers) w.kill('SIGKILL');
    if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  try {
    await poll(
      () => {
        if (proc.exitCode !== null) throw new PollAbort(new Error(`weft serve exited ${proc.exitCode}:\n${readFileSync(logPath, 'utf8')}`));
        return existsSync(kubeconfig) && /serving the weft\.io API/.test(readFileSync(logPath, 'utf8'));
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `weft serve to write ${kubeconfig}` },
    );
  } catch (err) {
    await stop(0);
    throw err;
  }
  const base = ['--kubeconfig', kubeconfig, '--cache-dir', join(workDir, 'kubectl-cache')];
  return {
    kubeconfig,
    logPath,
    kubectl: (args) => execIn(ns, kubectl, [...base, ...args]),
    startKubectl: (args) => {
      const w = spawn('ip', ['netns', 'exec', ns, kubectl, ...base, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      watchers.add(w);
      let out = '';
      w.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      w.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      return {
        output: () => out,
        stop: () => {
          w.kill('SIGKILL');
          watchers.delete(w);
        },
      };
    },
    stop,
  };
}
