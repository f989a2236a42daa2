// Processes the testbed runs inside its namespaces: started with their output in a log file
// and their own process group, stopped with a grace period, and one-shot commands whose
// secrets travel in the environment.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import type { RunResult } from './netns.js';

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

/** Starts cmd inside namespace ns, appending its output to logPath. */
export function spawnIn(ns: string, cmd: string, args: string[], logPath: string, env?: Record<string, string>): RunningProcess {
  const fd = openSync(logPath, 'a');
  // Own process group: a Ctrl-C meant for the demo must not kill agents before the demo
  // stops them in order; the log goes straight to a file so it survives us.
  const proc = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
    stdio: ['ignore', fd, fd],
    detached: true,
    env: { ...process.env, ...env },
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

/** Like execIn, with extra environment (a secret that must not be on the command line). */
export async function runIn(ns: string, cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
  const r = await execa('ip', ['netns', 'exec', ns, cmd, ...args], { reject: false, input: opts.input ?? '', env: opts.env ?? {} });
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
