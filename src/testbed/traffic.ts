// Traffic between the testbed's namespaces: pings (one-shot, polled until answered, or left
// running to date each lost request) and HTTP GETs from inside a namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { Ipv4, Ipv6 } from '../alloc/cidr.js';
import { execIn } from './netns.js';
import { parsePingStream, parsePingSummary, type PingResult, type PingStreamResult } from './parse.js';
import { poll } from './poll.js';

export interface PingHandle {
  /** Stops the ping (SIGINT) and reports what it saw, per sequence number. */
  stop(): Promise<PingStreamResult>;
}

export interface PingOptions {
  count?: number;
  intervalSec?: number;
  waitSec?: number;
}

/** ping's family flag for an address (none for IPv4); throws for anything that is not an IP address. */
function pingFamily(to: string): string[] {
  if (Ipv4.parse(to)) return [];
  if (Ipv6.parse(to)) return ['-6'];
  throw new Error(`not an IP address: ${to}`);
}

/** Pings and parses the summary. Never throws for unreachable targets: look at received. */
export async function ping(ns: string, to: string, opts: PingOptions = {}): Promise<PingResult> {
  if (!Ipv4.parse(to)) throw new Error(`not an IPv4 address: ${to} (ping6 pings IPv6 addresses)`);
  return pingOnce(ns, [], to, opts);
}

/** ping's IPv6 twin: pings an IPv6 address and parses the summary; never throws for unreachable targets. */
export async function ping6(ns: string, to: string, opts: PingOptions = {}): Promise<PingResult> {
  if (!Ipv6.parse(to)) throw new Error(`not an IPv6 address: ${to}`);
  return pingOnce(ns, ['-6'], to, opts);
}

async function pingOnce(ns: string, family: string[], to: string, opts: PingOptions): Promise<PingResult> {
  const args = [...family, '-n', '-q', '-c', String(opts.count ?? 3), '-i', String(opts.intervalSec ?? 0.2), '-W', String(opts.waitSec ?? 1), to];
  const r = await execIn(ns, 'ping', args);
  return parsePingSummary(r.stdout, r.stderr);
}

/** Pings an address of either family (ping or ping6). */
export async function pingAny(ns: string, to: string, opts: PingOptions = {}): Promise<PingResult> {
  return pingFamily(to).length > 0 ? ping6(ns, to, opts) : ping(ns, to, opts);
}

/**
 * Polls single pings (IPv4 or IPv6) until one is answered; returns how long that took, in ms.
 * fromName names the pinging place in the timeout's message.
 */
export async function waitReachable(ns: string, fromName: string, to: string, timeoutMs = 10_000): Promise<number> {
  pingFamily(to);
  const t0 = Date.now();
  await poll(async () => (await pingAny(ns, to, { count: 1, waitSec: 0.5 })).received === 1, {
    timeoutMs,
    intervalMs: 20,
    what: `${to} to answer pings from ${fromName}`,
  });
  return Date.now() - t0;
}

/**
 * Pings `to` every 10 ms from one ping process until the first answer, and resolves with that
 * answer's time (epoch ms, ping's own -D stamp); rejects when none came within timeoutMs. One
 * process rather than a poll of one-shot pings, so the time is the answer's, not that of the
 * next try after an unanswered one.
 */
export function firstAnswer(ns: string, to: string, timeoutMs: number, running: Set<ChildProcess>): Promise<number> {
  const family = pingFamily(to);
  const deadlineSec = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const proc = spawn('ip', ['netns', 'exec', ns, 'ping', ...family, '-n', '-D', '-i', '0.01', '-W', '1', '-w', deadlineSec, to], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(proc);
  return new Promise((resolve, reject) => {
    let out = '';
    let answeredAt: number | undefined;
    proc.stdout!.on('data', (d: Buffer) => {
      if (answeredAt !== undefined) return;
      out += d.toString();
      const m = /^\[(\d+\.\d+)\] \d+ bytes from /m.exec(out);
      if (!m) return;
      answeredAt = Math.round(Number(m[1]) * 1000);
      proc.kill('SIGINT');
    });
    proc.once('error', reject);
    proc.once('close', () => {
      running.delete(proc);
      if (answeredAt !== undefined) resolve(answeredAt);
      else reject(new Error(`${to} did not answer pings from ${ns} within ${timeoutMs} ms`));
    });
  });
}

/**
 * A ping (IPv4 or IPv6) left running (every intervalMs, 1 s reply timeout) until stop().
 * Its lines are timestamped (-D), so stop() dates each lost request (lostPings).
 */
export function startPing(ns: string, to: string, intervalMs: number, running: Set<ChildProcess>): PingHandle {
  const family = pingFamily(to);
  const interval = (intervalMs / 1000).toFixed(3);
  const proc = spawn('ip', ['netns', 'exec', ns, 'ping', ...family, '-n', '-D', '-O', '-i', interval, '-W', '1', to], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  running.add(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()));
  return {
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
      running.delete(proc);
      return parsePingStream(stdout, stderr, intervalMs);
    },
  };
}

/**
 * GETs a URL from inside a namespace (e.g. the agent's healthz on 127.0.0.1). Runs node there,
 * since a fresh machine need not have curl. Returns the status, or 0 when nothing answered.
 */
export async function httpGet(ns: string, url: string): Promise<{ status: number; body: string }> {
  const script =
    'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(async r=>{process.stdout.write(JSON.stringify({status:r.status,body:await r.text()}))},()=>process.stdout.write(\'{"status":0,"body":""}\'))';
  const r = await execIn(ns, process.execPath, ['-e', script, url]);
  try {
    const v = JSON.parse(r.stdout) as { status?: unknown; body?: unknown };
    return { status: typeof v.status === 'number' ? v.status : 0, body: typeof v.body === 'string' ? v.body : '' };
  } catch {
    return { status: 0, body: '' };
  }
}
