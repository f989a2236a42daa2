// The one etcd supervisor, for the tests and the testbed alike: it starts the members of a
// cluster, waits (with a deadline) until they serve and agree on a leader, kills, pauses,
// restarts and stops them, runs etcdctl against them, turns auth on, and removes what it made.
//
// Where the members run is a parameter. Inside a network namespace (`ip netns exec`): the
// testbed's underlay, for the e2e tests, `make demo`, the soak and the benches, laid out by
// etcd-in-netns.ts. Or here, on loopback (startLoopbackEtcd): the store, CLI and serve tests,
// on free ports with a throwaway dir, starting again when another process takes a port first.
//
// What etcd itself needs (a member's command line, reading endpoint status, leader agreement,
// the auth steps) is etcd.ts; processes start and stop through process.ts.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  agreedLeader,
  etcdAuthSteps,
  etcdMemberArgs,
  parseEndpointStatus,
  type EndpointStatus,
  type EtcdAuthSetup,
  type EtcdMemberAddress,
  type EtcdMemberOptions,
  type EtcdServerCerts,
} from './etcd.js';
import type { RunResult } from './netns.js';
import { poll, PollAbort } from './poll.js';
import { commandIn, fmtExit, readIfExists, runIn, spawnIn, stopProcess, tail, type RunningProcess } from './process.js';

export interface EtcdTls extends EtcdServerCerts {
  /** The client certificate the supervisor itself presents (health checks, etcdctl). */
  client?: { cert: string; key: string };
}

export interface EtcdMemberSpec extends EtcdMemberAddress {
  /** Everything the member logs, across its starts. */
  logPath: string;
}

export interface EtcdMember extends EtcdMemberSpec {
  /** The last process started for the member (running or not). */
  readonly process: ChildProcess | undefined;
  readonly pid: number | undefined;
  readonly running: boolean;
  logs(): string;
}

export interface MemberStatus extends EndpointStatus {
  index: number;
}

export interface EtcdctlOptions {
  /** Every running member's client URL when left out. */
  endpoints?: string[];
  /** Fed on stdin (e.g. a password with --interactive=false, so it never shows in ps). */
  input?: string;
  /** "name:password" for etcd auth; once enableAuth() ran, root when left out. */
  user?: string;
  /** The namespace etcdctl runs in; where the members run when left out. */
  from?: string;
}

/** A running `etcdctl watch --prefix`; events() returns "PUT key" / "DELETE key" lines so far. */
export interface WatchHandle {
  events(): string[];
  stop(): void;
}

export interface EtcdClusterOptions {
  members: EtcdMemberSpec[];
  /** The network namespace the members run in; this one when left out. */
  netns?: string;
  /** Flags for every member besides TLS (token, timings, logging, extras). */
  memberOptions?: Omit<EtcdMemberOptions, 'tls'>;
  tls?: EtcdTls;
  /** How long a member gets after SIGTERM (or SIGINT) before SIGKILL; 5 s by default. */
  graceMs?: number;
  /** A directory made for this cluster alone (its data and logs): destroy() removes it. */
  ownDir?: string;
}

/** Polls of a member's status give up after this, so that a frozen member costs one poll only. */
const STATUS_TIMEOUT = '--command-timeout=2s';
/** One etcdctl call, at the most (a watch excepted). */
const ETCDCTL_DEADLINE_MS = 15_000;

// Last resort when the process dies without stopping its clusters: never leave etcd behind.
const live = new Set<{ kill(signal: NodeJS.Signals): unknown }>();
let exitHookInstalled = false;
function track(p: { kill(signal: NodeJS.Signals): unknown }, exited: Promise<unknown>): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const q of live) q.kill('SIGKILL');
    });
  }
  live.add(p);
  void exited.then(() => live.delete(p));
}

export class EtcdCluster {
  /** Client URLs of all members, in member order. */
  readonly endpoints: string[];
  readonly members: EtcdMember[];
  readonly tls?: EtcdTls;
  private readonly specs: EtcdMemberSpec[];
  private readonly procs: (RunningProcess | undefined)[];
  /** Members stopped on purpose since their last start: their exit is not a failure. */
  private readonly stopping = new Set<number>();
  private readonly watches = new Set<{ kill(signal: NodeJS.Signals): unknown }>();
  private readonly graceMs: number;
  private rootPassword?: string;
  private destroyed = false;

  constructor(private readonly opts: EtcdClusterOptions) {
    this.specs = opts.members;
    this.endpoints = this.specs.map((m) => m.clientUrl);
    this.procs = this.specs.map(() => undefined);
    if (opts.tls) this.tls = opts.tls;
    this.graceMs = opts.graceMs ?? 5000;
    const procs = this.procs;
    this.members = this.specs.map((m, i) => ({
      ...m,
      get process() {
        return procs[i]?.proc;
      },
      get pid() {
        return procs[i]?.pid;
      },
      get running() {
        const p = procs[i];
        return p !== undefined && !p.status;
      },
      logs: () => readIfExists(m.logPath) ?? '',
    }));
  }

  /** Starts every member at once (a new cluster's members wait for each other) and waits until they serve. */
  async start(): Promise<void> {
    this.specs.forEach((_, i) => this.launch(i));
    await this.waitHealthy();
  }

  /** Sends a signal (default SIGKILL; a paused member is resumed first) and waits until the member has exited. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.spec(i);
    const p = this.procs[i];
    if (!p || p.status) return;
    this.stopping.add(i);
    if (signal !== 'SIGKILL') p.proc.kill('SIGCONT');
    await stopProcess(p, signal, this.graceMs);
  }

  /** Starts a stopped member again on its ports and data dir, so it rejoins; waits until all serve. */
  async startMember(i: number): Promise<void> {
    if (this.members[i]?.running) throw new Error(`etcd member ${this.spec(i).name} is still running`);
    this.launch(i);
    await this.waitHealthy();
  }

  /** Stops a member (SIGTERM) and starts it again on its data dir; waits until all serve. */
  async restart(i: number): Promise<void> {
    await this.kill(i, 'SIGTERM');
    await this.startMember(i);
  }

  /** Stops every member, keeping its data (SIGTERM by default: an outage, or a clean end). */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.specs.map((_, i) => this.kill(i, signal)));
  }

  /** Resumes paused members and starts stopped ones (after an outage or a failed test); waits until healthy. */
  async reviveAll(): Promise<void> {
    this.specs.forEach((_, i) => {
      if (this.members[i]!.running) this.procs[i]!.proc.kill('SIGCONT');
      else this.launch(i);
    });
    await this.waitHealthy();
  }

  /** Freezes a member, or every running one (SIGSTOP): its sockets stay open but nothing answers. */
  pause(i?: number): void {
    this.signalRunning('SIGSTOP', i);
  }

  resume(i?: number): void {
    this.signalRunning('SIGCONT', i);
  }

  /** `endpoint status` of every running member that answers. */
  async status(): Promise<MemberStatus[]> {
    const all = await Promise.all(this.specs.map((_, i) => (this.members[i]!.running ? this.statusOf(i) : undefined)));
    return all.filter((s): s is MemberStatus => s !== undefined);
  }

  /** Index of the member that every running member names as leader; waits (up to timeoutMs) through an election. */
  async leader(opts: { timeoutMs?: number } = {}): Promise<number> {
    const found = await poll(
      async () => {
        const index = await this.leaderIndex();
        return index === undefined ? undefined : { index };
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 100, what: 'the etcd members to agree on a leader' },
    );
    return found.index;
  }

  /** Hands leadership to a member (etcdctl move-leader) and waits until all agree. */
  async moveLeader(target: number): Promise<void> {
    const current = await this.leader();
    if (current === target) return;
    const st = await this.statusOf(target);
    if (!st) throw new Error(`etcd member ${this.spec(target).name} does not answer`);
    // move-leader takes the id in hex and must be sent to the current leader.
    const r = await this.etcdctl(['move-leader', BigInt(st.memberId).toString(16)], { endpoints: [this.endpoints[current]!] });
    if (r.exitCode !== 0) throw new Error(`etcdctl move-leader failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
    await poll(async () => (await this.leaderIndex()) === target, {
      timeoutMs: 10_000,
      intervalMs: 100,
      what: `member ${this.spec(target).name} to lead`,
    });
  }

  /** A gauge from a member's /metrics, e.g. etcd_debugging_mvcc_watch_stream_total (loopback and http only). */
  async metric(i: number, name: string): Promise<number> {
    if (this.opts.netns !== undefined || this.tls) throw new Error('metric() reads /metrics over plain http on loopback only');
    const res = await fetch(`${this.spec(i).clientUrl}/metrics`, { signal: AbortSignal.timeout(2000) });
    const line = (await res.text()).split('\n').find((l) => l.startsWith(name + ' '));
    if (!line) throw new Error(`etcd member ${this.spec(i).name} has no metric ${name}`);
    return Number(line.slice(name.length + 1));
  }

  /**
   * Waits until every running member answers and they agree on a leader. A member that exits
   * without being asked to (a port taken, a bad flag) ends the wait at once, with its log.
   */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    await poll(
      async () => {
        this.procs.forEach((p, i) => {
          if (p?.status && !this.stopping.has(i)) {
            const m = this.spec(i);
            throw new PollAbort(new Error(`etcd member ${m.name} exited (${fmtExit(p.status)}):\n${tail(m.logPath)}`));
          }
        });
        return (await this.leaderIndex()) !== undefined;
      },
      { timeoutMs, intervalMs: 100, what: `etcd at ${this.endpoints.join(',')} to be healthy` },
    );
  }

  /** Runs etcdctl (API v3) against the cluster; the TLS flags, and root's login once auth is on, are added. */
  async etcdctl(args: string[], opts: EtcdctlOptions = {}): Promise<RunResult> {
    const running = this.specs.flatMap((m, i) => (this.members[i]!.running ? [m.clientUrl] : []));
    const { flags, env } = this.invocation(opts.endpoints ?? (running.length > 0 ? running : this.endpoints), opts.user);
    return runIn(opts.from ?? this.opts.netns, 'etcdctl', [...flags, ...args], {
      env,
      timeoutMs: ETCDCTL_DEADLINE_MS,
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  }

  /**
   * Creates root and a user whose role may read and write only under a prefix, then turns
   * auth on; etcdctl runs as root afterwards. Passwords go over stdin, never on a command line.
   */
  async enableAuth(a: EtcdAuthSetup): Promise<void> {
    for (const { args, input, mayFail } of etcdAuthSteps(a)) {
      const r = await this.etcdctl(args, input !== undefined ? { input } : {});
      if (r.exitCode !== 0 && !mayFail) throw new Error(`etcdctl ${args[0]} ${args[1]} failed while enabling auth: ${r.stderr.trim()}`);
    }
    this.rootPassword = a.rootPassword;
  }

  /**
   * A running `etcdctl watch --prefix PREFIX` over every member (it resumes on another member
   * when its own dies), from where the members run; killed by killWatches() or destroy() at the latest.
   */
  watchPrefix(prefix: string): WatchHandle {
    const { flags, env } = this.invocation(this.endpoints);
    const command = commandIn(this.opts.netns, 'etcdctl', [...flags, 'watch', '--prefix', prefix]);
    const proc = execa(command.file, command.args, { reject: false, stdin: 'ignore', stderr: 'ignore', buffer: false, env });
    this.watches.add(proc);
    track(proc, proc);
    void proc.then(() => this.watches.delete(proc));
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    return {
      events: () => {
        const lines = out.split('\n');
        const events: string[] = [];
        for (let i = 0; i < lines.length; i++) {
          if (lines[i] === 'PUT' || lines[i] === 'DELETE') events.push(`${lines[i]} ${lines[i + 1] ?? ''}`);
        }
        return events;
      },
      stop: () => {
        proc.kill('SIGKILL');
      },
    };
  }

  killWatches(): void {
    for (const w of this.watches) w.kill('SIGKILL');
  }

  /** Kills the watches and every member and removes the cluster's own dir. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.killWatches();
    await this.stop('SIGKILL');
    if (this.opts.ownDir) rmSync(this.opts.ownDir, { recursive: true, force: true });
  }

  private spec(i: number): EtcdMemberSpec {
    const m = this.specs[i];
    if (!m) throw new Error(`no etcd member ${i} (0..${this.specs.length - 1})`);
    return m;
  }

  private launch(i: number): void {
    const m = this.spec(i);
    mkdirSync(m.dataDir, { recursive: true, mode: 0o700 });
    const args = etcdMemberArgs(i, this.specs, { ...this.opts.memberOptions, ...(this.tls ? { tls: this.tls } : {}) });
    const p = spawnIn(this.opts.netns, 'etcd', args, m.logPath);
    this.procs[i] = p;
    this.stopping.delete(i);
    track(p.proc, p.exited);
  }

  private signalRunning(signal: NodeJS.Signals, i?: number): void {
    const indices = i === undefined ? this.specs.map((_, j) => j) : [i];
    for (const j of indices) if (this.members[j]?.running) this.procs[j]!.proc.kill(signal);
  }

  /** etcdctl's global flags and environment; as root, once auth is on, unless a user is given. */
  private invocation(endpoints: string[], user?: string): { flags: string[]; env: Record<string, string> } {
    const tls = this.tls;
    return {
      flags: [
        '--endpoints', endpoints.join(','),
        ...(tls ? ['--cacert', tls.ca] : []),
        ...(tls?.client ? ['--cert', tls.client.cert, '--key', tls.client.key] : []),
        ...(user !== undefined ? ['--user', user] : []),
      ],
      // Root's password in the environment: it never shows in a process listing.
      env: { ETCDCTL_API: '3', ...(user === undefined && this.rootPassword !== undefined ? { ETCDCTL_USER: `root:${this.rootPassword}` } : {}) },
    };
  }

  /** One etcdctl per member: a member that does not answer leaves out only its own entry. */
  private async statusOf(i: number): Promise<MemberStatus | undefined> {
    const r = await this.etcdctl([STATUS_TIMEOUT, 'endpoint', 'status', '-w', 'json'], { endpoints: [this.spec(i).clientUrl] });
    const [entry] = r.exitCode === 0 ? parseEndpointStatus(r.stdout) : [];
    return entry && { ...entry, index: i };
  }

  /** The leader's index when every running member answers and names the same live leader. */
  private async leaderIndex(): Promise<number | undefined> {
    const running = this.members.filter((m) => m.running).length;
    const endpoint = agreedLeader(await this.status(), running);
    return endpoint === undefined ? undefined : this.endpoints.indexOf(endpoint);
  }
}

// ---- on loopback, in this namespace ----

export interface LoopbackEtcdOptions {
  /** Members; 1 by default. */
  size?: number;
  tls?: EtcdTls;
  /** Raft timings, etcd's defaults (100/1000) unless given: shorter ones flap on a busy 2-core CI box. */
  heartbeatMs?: number;
  electionMs?: number;
  extraArgs?: string[];
}

/**
 * Starts a cluster on 127.0.0.1 in this namespace: free ports, data dirs and logs in a fresh
 * temp dir that destroy() removes. A port can be taken between freePort() and etcd's bind
 * (another test file asks at the same time): then it starts again on other ports, twice at most.
 */
export async function startLoopbackEtcd(opts: LoopbackEtcdOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    const cluster = await loopbackCluster(opts);
    try {
      await cluster.start();
      return cluster;
    } catch (err) {
      await cluster.destroy();
      if (attempt < 3 && /address already in use/.test((err as Error).message)) continue;
      throw err;
    }
  }
}

async function loopbackCluster(opts: LoopbackEtcdOptions): Promise<EtcdCluster> {
  const size = opts.size ?? 1;
  const scheme = opts.tls ? 'https' : 'http';
  const ports = await distinctFreePorts(size * 2);
  const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const members = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `${scheme}://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    dataDir: join(dir, `m${i}`),
    logPath: join(dir, `m${i}.log`),
  }));
  return new EtcdCluster({
    members,
    ownDir: dir,
    ...(opts.tls ? { tls: opts.tls } : {}),
    memberOptions: {
      // Two clusters started at once by two test files must never join each other.
      token: `weft-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
      ...(opts.electionMs !== undefined ? { electionMs: opts.electionMs } : {}),
      ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
    },
  });
}

/** A TCP port nothing listens on at the moment of asking. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** freePort() can hand out the same port twice when asked in a row; insist on distinct ones. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
