// Processes the testbed runs inside its namespaces (or, for the tests' loopback etcd, in this
// one): started with their output in a log file, stopped with a grace period, and one-shot
// commands whose secrets travel in the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import type { RunResult } from './netns.js';

/** The command line that runs cmd inside namespace ns, or in this namespace when ns is undefined. */
export function commandIn(ns: string | undefined, cmd: string, args: string[]): { file: string; args: string[] } {
  return ns === undefined ? { file: cmd, args } : { file: 'ip', args: ['netns', 'exec', ns, cmd, ...args] };
}

/** A long-running child (etcd, an agent) inside a namespace, logging to a file. */
export interface RunningProcess {
  proc: ChildProcess;
  pid: number;
  logPath: string;
  exited: Promise<ExitStatus>;
  status?: ExitStatus;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Starts cmd inside namespace ns (this one when undefined), appending its output to logPath,
 * with this process's environment and `env` over it; with `{ inherit: false }`, with `env` alone.
 */
export function spawnIn(
  ns: string | undefined,
  cmd: string,
  args: string[],
  logPath: string,
  env?: Record<string, string>,
  opts: { inherit?: boolean } = {},
): RunningProcess {
  const fd = openSync(logPath, 'a');
  const command = commandIn(ns, cmd, args);
  // In a namespace, its own process group: a Ctrl-C meant for the demo must not kill agents
  // or etcd before the demo stops them in order. In this namespace (the tests' etcd), the
  // caller's group, so that a Ctrl-C of the test run stops it too. The log goes straight to a
  // file so it survives us.
  const proc = spawn(command.file, command.args, {
    stdio: ['ignore', fd, fd],
    detached: ns !== undefined,
    env: opts.inherit === false ? { ...env } : { ...process.env, ...env },
  });
  closeSync(fd);
  const p: RunningProcess = {
    proc,
    pid: proc.pid ?? -1,
    logPath,
    exited: new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        p.status = { code, signal };
        resolve(p.status);
      });
      proc.once('error', () => {
        p.status = { code: -1, signal: null };
        resolve(p.status);
      });
    }),
  };
  return p;
}

export function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function stopProcess(p: RunningProcess, signal: NodeJS.Signals, graceMs: number): Promise<ExitStatus> {
  if (p.status) return p.status;
  p.proc.kill(signal);
  if (signal === 'SIGKILL') return p.exited;
  const timer = setTimeout(() => p.proc.kill('SIGKILL'), graceMs);
  try {
    return await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Like execIn (this namespace when ns is undefined), with extra environment (a secret that
 * must not be on the command line) and an optional deadline.
 */
export async function runIn(
  ns: string | undefined,
  cmd: string,
  args: string[],
  opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RunResult> {
  const command = commandIn(ns, cmd, args);
  const r = await execa(command.file, command.args, {
    reject: false,
    input: opts.input ?? '',
    env: opts.env ?? {},
    ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr ?? r.message) };
}

export function fmtExit(s: ExitStatus): string {
  return s.signal ? `signal ${s.signal}` : `code ${s.code}`;
}

/** The last lines of a log file, for error messages. */
export function tail(path: string, lines = 20): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
