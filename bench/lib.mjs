// Shared driver code for the benches: testbed lifecycle, the worker in the underlay, kernel
// counts read from /proc, agent log parsing, process CPU/RSS, statistics and output.
import { spawn, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { Testbed } from '../dist/testbed/topology.js';
import { ipBatch } from '../dist/testbed/netns.js';
import { NETWORK_JSON } from './leases.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
export const PREFIX = '/coreos.com/network';
export const now = () => process.hrtime.bigint();
export const msSince = (t0, t1 = now()) => Number(BigInt(t1) - BigInt(t0)) / 1e6;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** Runs body with a fresh testbed and a worker in its underlay; tears both down whatever happens. */
export async function withTestbed(body) {
  // WEFT_BENCH_BIN runs the agents of another build (another checkout's bin/weft), for A/B runs.
  const tb = await Testbed.create({
    ...(process.env.WEFT_BENCH_KEEP ? { keepWorkDir: true, workDir: process.env.WEFT_BENCH_KEEP } : {}),
    ...(process.env.WEFT_BENCH_BIN ? { weftBin: process.env.WEFT_BENCH_BIN } : {}),
  });
  let worker;
  const onSignal = () => {
    void tb.teardown().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    worker = new Worker(tb);
    await worker.call('init', { endpoint: tb.etcdEndpoint, etcdPrefix: PREFIX });
    await worker.call('putConfig', { json: NETWORK_JSON });
    return await body(tb, worker);
  } finally {
    worker?.close();
    await tb.teardown();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** bench/worker.mjs running inside the underlay namespace, called over JSON lines. */
export class Worker {
  constructor(tb) {
    this.proc = spawn('ip', ['netns', 'exec', tb.underlay, process.execPath, join(HERE, 'worker.mjs')], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.pending = new Map();
    this.next = 0;
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const msg = JSON.parse(line);
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`worker: ${msg.error}`));
      else p.resolve(msg.result);
    });
    this.proc.once('exit', () => {
      for (const p of this.pending.values()) p.reject(new Error('worker exited'));
    });
  }
  call(op, args) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.proc.stdin.write(JSON.stringify({ id, op, args }) + '\n');
    });
  }
  close() {
    this.proc.stdin.end();
  }
}

/** Starts the agent on a host and returns its pid and spawn time (hrtime and wall clock). */
export function startAgent(tb, host, extra = []) {
  const wall = Date.now();
  const t0 = now();
  const agent = tb.startAgent(host, extra);
  return { agent, t0, wall, pid: agent.pid };
}

/** Entries on flannel.1 in the agent's namespace, from /proc (no process start, cheap to poll). */
export function procCounts(pid) {
  const count = (file, dev, col) => {
    try {
      return readFileSync(`/proc/${pid}/net/${file}`, 'utf8').split('\n').filter((l) => l.split(/\s+/)[col] === dev).length;
    } catch {
      return 0;
    }
  };
  return { routes: count('route', 'flannel.1', 0), neighs: count('arp', 'flannel.1', 5) };
}

export async function fdbCount(ns) {
  const r = await execa('bridge', ['-n', ns, 'fdb', 'show', 'dev', 'flannel.1'], { reject: false });
  return String(r.stdout).split('\n').filter((l) => l.includes(' dst ')).length;
}

/** Waits until the host's kernel holds n routes, n neighbours and n FDB entries on flannel.1. */
export async function waitForEntries(host, pid, n, { intervalMs = 50, timeoutMs = 300_000, agent } = {}) {
  const t0 = now();
  for (;;) {
    const c = procCounts(pid);
    if (c.routes >= n && c.neighs >= n) {
      const t = now();
      // Routes go last in the agent's plan, so the FDB batch has finished; check rather than assume.
      if ((await fdbCount(host.ns)) >= n) return t;
    }
    if (agent?.status) throw new Error(`agent exited (${JSON.stringify(agent.status)})`);
    if (msSince(t0) > timeoutMs) throw new Error(`timed out: ${JSON.stringify(c)} of ${n}`);
    await sleep(intervalMs);
  }
}

/** Prefixes in the main FIB of pid's namespace (the kernel's own count: ~0.2 ms to read at 5,000 routes, under RCU); NaN when unreadable. */
export function fibPrefixes(pid) {
  try {
    const m = /Main:[\s\S]*?Prefixes:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/net/fib_triestat`, 'latin1'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** The same, of namespace ns (a process started in it): before the agent, which has no process there yet. */
export async function fibPrefixesIn(ns) {
  const r = await execa('ip', ['netns', 'exec', ns, 'cat', '/proc/net/fib_triestat']);
  const m = /Main:[\s\S]*?Prefixes:\s*(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`no prefix count in ${ns}'s fib_triestat`);
  return Number(m[1]);
}

/**
 * When the host's kernel came to hold n routes, n neighbours and n FDB entries on flannel.1,
 * for timing a full sync (waitForEntries answers "whether", this one "since when").
 *
 * waitForEntries polls by reading and splitting /proc's route and arp files (15,000 lines at
 * 5,000 peers: ~30 ms of CPU per poll, every 10-50 ms, beside the agent being measured), and
 * takes its time after a poll that found everything: on average half an interval plus a
 * poll's ~30 ms after the kernel had it. This one polls the FIB's prefix count every
 * `intervalMs` (~0.2 ms each) and answers the time of the first poll that saw `base` (the
 * count before the agent started, fibPrefixesIn) plus n, once an exact check (procCounts,
 * fdbCount) then finds every entry; when that check fails, the time of a later poll whose
 * check passes. The agent's own other prefixes (its device's address: one or two) can make
 * that time early by as many route insertions (well under a millisecond). As waitForEntries,
 * it relies on the agent sending a peer's route after its neighbour and FDB entry were
 * acknowledged (the last route is the last entry), and checks the rest exactly.
 */
export async function waitForFullSync(host, pid, n, { base, intervalMs = 5, timeoutMs = 300_000, agent }) {
  const t0 = now();
  let reached;
  for (;;) {
    const t = now();
    reached ??= fibPrefixes(pid) >= base + n ? t : undefined;
    if (reached !== undefined) {
      const c = procCounts(pid);
      if (c.routes >= n && c.neighs >= n && (await fdbCount(host.ns)) >= n) return reached;
      reached = undefined; // not everything yet: the time of a later poll
    }
    if (agent?.status) throw new Error(`agent exited (${JSON.stringify(agent.status)})`);
    if (msSince(t0) > timeoutMs) throw new Error(`timed out: ${JSON.stringify(procCounts(pid))} of ${n}`);
    await sleep(intervalMs);
  }
}

/** Agent log lines (JSON, or --log-format text) as { t (wall ms), level, msg, fields }. */
/**
 * A reconcile pass's outcome line: "dataplane converged", or the one line of a pass that
 * carried one peer's change ("peer added|changed|removed" with the pass's operations and
 * timings; src/agent/reconcile-loop.ts).
 */
export function isPassLine(l) {
  return l.msg === 'dataplane converged' || (/^peer (added|changed|removed)$/.test(l.msg) && l.fields.operations !== undefined);
}

export function parseLog(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('{')) {
      try {
        const { time, level, msg, ...fields } = JSON.parse(line);
        out.push({ t: Date.parse(time), level: String(level).toUpperCase(), msg, fields });
      } catch {
        // a line cut short by a kill
      }
      continue;
    }
    const m = /^(\S+Z) (\w+)\s+(.*?)((?: [A-Za-z]+=(?:"(?:[^"\\]|\\.)*"|\S+))*)$/.exec(line);
    if (!m) continue;
    const fields = {};
    for (const f of m[4].matchAll(/ ([A-Za-z]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
      fields[f[1]] = f[2].startsWith('"') ? JSON.parse(f[2]) : f[2];
    }
    out.push({ t: Date.parse(m[1]), level: m[2], msg: m[3], fields });
  }
  return out;
}

/**
 * CPU and RSS of a process. `cpuMs` is all of it: its own user + system time, that of its
 * children it has waited for (cutime + cstime: every `iptables-save`, `ip` or `bridge` process
 * the agent ran), and that of its children still running (the agent's long-lived `rtmon`,
 * whose time would otherwise only show once it exits); `ownCpuMs` is its own only, and
 * `liveChildrenCpuMs` the running children's.
 */
export function procUsage(pid) {
  const threads = threadRuntimes(pid);
  const { own, children } = statTimes(pid);
  let live = 0;
  for (const child of liveChildren(pid)) {
    try {
      const t = statTimes(child);
      live += t.own + t.children;
    } catch {
      // exited between the listing and the read: its time is in the parent's cutime by now or soon
    }
  }
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  const ms = (ticks) => (ticks * 1000) / CLK_TCK;
  return { pid, cpuMs: ms(own + children + live), ownCpuMs: ms(own), childrenCpuMs: ms(children), liveChildrenCpuMs: ms(live), threads, rssMb: rssKb / 1024 };
}

/**
 * The CPU a process used between two procUsage readings, in ms: `cpuMs` with its children
 * (as procUsage's), `ownCpuMs` its own. Its own is the scheduler's count for each of its
 * threads (/proc/PID/task/TID/schedstat, nanoseconds) when every thread of the first reading
 * is still there at the second; otherwise (a thread ended in between and took its count
 * along) the tick-sampled utime + stime. Why: with tick accounting (this VM's kernel: 250 Hz)
 * utime + stime is a sample, one tick charged to whoever runs when it fires: 200 events at
 * ~1 ms are ~50 ticks, ~14% of noise, and /proc rounds them to 10 ms besides.
 */
export function cpuBetween(u0, u1) {
  const precise = [...u0.threads.keys()].every((tid) => u1.threads.has(tid));
  let ownCpuMs = u1.ownCpuMs - u0.ownCpuMs;
  if (precise) {
    let ns = 0;
    for (const [tid, t1] of u1.threads) ns += t1 - (u0.threads.get(tid) ?? 0);
    ownCpuMs = ns / 1e6;
  }
  const childrenCpuMs = u1.childrenCpuMs - u0.childrenCpuMs + (u1.liveChildrenCpuMs - u0.liveChildrenCpuMs);
  // The main thread (its id is the pid's) runs the JavaScript; the others are V8's compiler
  // and garbage-collection helpers, libuv's pool, and worker threads.
  const main = String(u1.pid);
  const mainThreadCpuMs = u0.threads.has(main) && u1.threads.has(main) ? (u1.threads.get(main) - u0.threads.get(main)) / 1e6 : undefined;
  return { cpuMs: ownCpuMs + childrenCpuMs, ownCpuMs, mainThreadCpuMs, precise };
}

/**
 * Waits (up to 15 s) until each process used less than 20 ms of CPU in a second: an agent's
 * start-up has settled (the collection of a full sync's garbage, hundreds of ms once, would
 * otherwise land in what a bench counts next).
 */
export async function untilQuiet(pids) {
  for (let k = 0; k < 15; k++) {
    const before = pids.map((pid) => procUsage(pid).cpuMs);
    await new Promise((r) => setTimeout(r, 1000));
    if (pids.every((pid, i) => procUsage(pid).cpuMs - before[i] < 20)) return;
  }
}

/** Each thread's run time so far (ns; the scheduler's own count), by thread id. */
function threadRuntimes(pid) {
  const out = new Map();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(task, Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** utime + stime and cutime + cstime of a process, in clock ticks. */
function statTimes(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { own: Number(rest[11]) + Number(rest[12]), children: Number(rest[13]) + Number(rest[14]) }; // fields 14-17
}

/** The pids of a process's running children (every thread's). */
function liveChildren(pid) {
  const out = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** Creates flannel.1 in a host namespace exactly as the agent would (for the floor). */
/** Route entries the kernel holds, in all namespaces (its ip_fib_alias slab); undefined where /proc/slabinfo does not say. */
function routeEntriesInKernel() {
  try {
    const m = /^ip_fib_alias\s+(\d+)/m.exec(readFileSync('/proc/slabinfo', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes a host and waits (up to 2 s) until the kernel has freed its routes. A namespace is
 * torn down after `ip netns del` returns, in the kernel's own time: 5,000 routes, neighbours
 * and FDB entries take ~50-90 ms of its CPU, and a measurement started meanwhile shared the
 * machine with it (whichever of the floor and the agent came next).
 */
export async function removeHostSettled(tb, host, routes) {
  const before = routeEntriesInKernel();
  await tb.removeHost(host);
  if (before === undefined || routes < 100) return;
  const t0 = now();
  while (msSince(t0) < 2000 && (routeEntriesInKernel() ?? 0) > before - 0.9 * routes) await sleep(5);
}

export async function makeVxlanDevice(host, ownSubnetNet = '10.0.0.0') {
  await ipBatch(host.ns, [
    `link add flannel.1 type vxlan id 1 local ${host.ip} dev eth0 nolearning dstport 8472`,
    'link set flannel.1 mtu 1450 up',
    `addr replace ${ownSubnetNet}/32 dev flannel.1`,
  ]);
}

/** Runs one `ip|bridge -n NS -force -batch FILE` and returns its wall time in ms. */
export async function timedBatch(tool, ns, file, lines) {
  writeFileSync(file, lines.join('\n') + '\n');
  const t0 = now();
  const r = await execa(tool, ['-n', ns, '-force', '-batch', file], { reject: false });
  const ms = msSince(t0);
  if (r.exitCode !== 0) throw new Error(`${tool} -batch failed: ${String(r.stderr).slice(0, 300)}`);
  return ms;
}

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const round = (v, digits = 1) => (Number.isFinite(v) ? Number(v.toFixed(digits)) : v);

/** Prints rows (arrays of cells, the first row the header) as an aligned table. */
export function printTable(title, rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  console.log(`\n${title}`);
  rows.forEach((r, i) => {
    console.log('  ' + r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  '));
    if (i === 0) console.log('  ' + widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

export function printResult(name, figures) {
  console.log(`BENCH ${name} ${JSON.stringify(figures)}`);
}

/**
 * Runs fn(ns, ip) synchronously in a namespace of this process's own with a veth underlay
 * (eth0 at 192.0.2.1/16, both ends up; `ip(...args)` runs `ip -n ns ...`), for the benches
 * that measure the kernel alone (no testbed, no etcd); the namespace is deleted whatever fn does.
 */
export function inScratchNamespace(name, fn) {
  const ns = `wbench-${name}-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    const ip = (...a) => execFileSync('ip', ['-n', ns, ...a]);
    ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p');
    ip('addr', 'add', '192.0.2.1/16', 'dev', 'eth0');
    ip('link', 'set', 'eth0', 'up');
    ip('link', 'set', 'eth0p', 'up');
    return fn(ns, ip);
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}
