// The testbed's etcd: one member or a 3-member cluster inside the underlay namespace, with
// TLS (client-certificate auth from a throwaway PKI) and users and roles when asked for.
// Callers get the connection flags for weft and etcdctl; passwords travel in files or the
// environment, never on a command line.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { agreedLeader, etcdAuthSteps, etcdMemberArgs, parseEndpointStatus } from './etcd.js';
import type { RunResult } from './netns.js';
import { poll, PollAbort } from './poll.js';
import type { Pki } from './pki.js';
import { fmtExit, runIn, spawnIn, stopProcess, tail, type RunningProcess } from './process.js';

/** Which connection flags etcdFlags() returns; everything the testbed set up by default. */
export interface EtcdFlagOptions {
  /** With --etcd-certfile/--etcd-keyfile (TLS testbeds); false leaves only the CA. */
  clientCert?: boolean;
  /** With --etcd-username and --etcd-password-file (auth testbeds). */
  auth?: boolean;
  /** Another password file, e.g. one holding a wrong password. */
  passwordFile?: string;
}

/** A running `etcdctl watch --prefix`; events() returns "PUT key" / "DELETE key" lines so far. */
export interface WatchHandle {
  events(): string[];
  stop(): void;
}

interface EtcdMemberSpec {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logPath: string;
}

/** Where and how the members run: the etcd part of TestbedOptions, and the testbed's places. */
export interface EtcdInNetnsOptions {
  runId: string;
  /** The namespace the members run in (the underlay). */
  underlay: string;
  workDir: string;
  /** The host part of the client URLs: the underlay's IPv4 address, or its IPv6 one in brackets. */
  etcdHost: string;
  etcdClientPort?: number;
  etcdMembers?: 1 | 3;
  etcdTls?: boolean;
  etcdAuth?: { user: string; password: string };
  etcdPrefix?: string;
  graceMs: number;
}

export class EtcdInNetns {
  /** The first member's client URL (the only one unless etcdMembers is 3). */
  readonly etcdEndpoint: string;
  /** Every member's client URL, in member order. */
  readonly etcdEndpoints: string[];
  /** The throwaway PKI of a TLS testbed (CA, server and client certificates in workDir/pki). */
  pki?: Pki;
  /** The password file agents and the CLI read on an auth testbed (mode 0600). */
  readonly etcdPasswordFile?: string;
  readonly etcdUser?: string;
  readonly etcdAuth?: { user: string; password: string };
  readonly etcdTls: boolean;
  private readonly runId: string;
  private readonly underlay: string;
  private readonly etcdPrefix: string;
  private readonly rootPassword = randomBytes(12).toString('hex');
  private authEnabled = false;
  private readonly members: EtcdMemberSpec[];
  private readonly etcdProcs: (RunningProcess | undefined)[];
  private readonly watches = new Set<ChildProcess>();
  private readonly graceMs: number;

  constructor(opts: EtcdInNetnsOptions) {
    this.runId = opts.runId;
    this.underlay = opts.underlay;
    this.graceMs = opts.graceMs;
    const etcdHost = opts.etcdHost;
    const size = opts.etcdMembers ?? 1;
    if (size !== 1 && size !== 3) throw new Error(`etcdMembers must be 1 or 3, got ${String(size)}`);
    this.etcdTls = opts.etcdTls ?? false;
    const scheme = this.etcdTls ? 'https' : 'http';
    const base = opts.etcdClientPort ?? 2379;
    // The namespace is ours alone, so fixed ports are free; peer URLs stay on its loopback.
    this.members = Array.from({ length: size }, (_, i) => {
      const single = size === 1; // names and paths as they always were, for existing callers
      return {
        name: single ? 'testbed' : `m${i}`,
        clientUrl: `${scheme}://${etcdHost}:${base + 2 * i}`,
        peerUrl: `http://127.0.0.1:${2380 + 2 * i}`,
        dataDir: join(opts.workDir, single ? 'etcd' : `etcd-${i}`),
        logPath: join(opts.workDir, single ? 'etcd.log' : `etcd-${i}.log`),
      };
    });
    this.etcdProcs = this.members.map(() => undefined);
    this.etcdEndpoints = this.members.map((m) => m.clientUrl);
    this.etcdEndpoint = this.etcdEndpoints[0]!;
    this.etcdPrefix = opts.etcdPrefix ?? '/coreos.com/network';
    if (opts.etcdAuth) {
      const { user, password } = opts.etcdAuth;
      if (!/^[a-zA-Z0-9_-]+$/.test(user) || user === 'root') {
        throw new Error(`etcdAuth.user must be a plain name other than root, got ${JSON.stringify(user)}`);
      }
      if (!password || /[\n\r]/.test(password)) throw new Error('etcdAuth.password must be one non-empty line');
      this.etcdAuth = { user, password };
      this.etcdUser = user;
      this.etcdPasswordFile = join(opts.workDir, 'etcd-password');
    }
  }

  private memberArgs(i: number): string[] {
    const pki = this.pki;
    const secure = pki !== undefined || this.etcdAuth !== undefined;
    return etcdMemberArgs(i, this.members, {
      ...(this.members.length > 1 ? { token: `weft-${this.runId}` } : {}),
      ...(pki ? { tls: { ca: pki.ca, ...pki.server, clientCertAuth: true } } : {}),
      // zap at warn level logs each refused handshake and each refused password: tests count them.
      ...(secure ? { logArgs: ['--logger', 'zap', '--log-level', 'warn'] } : {}),
    });
  }

  private launchMember(i: number): void {
    const m = this.members[i]!;
    mkdirSync(m.dataDir, { recursive: true, mode: 0o700 });
    this.etcdProcs[i] = spawnIn(this.underlay, 'etcd', this.memberArgs(i), m.logPath);
  }

  private memberRunning(i: number): boolean {
    const p = this.etcdProcs[i];
    return p !== undefined && !p.status;
  }

  private async waitMembersHealthy(indices: number[]): Promise<void> {
    const endpoints = indices.map((i) => this.members[i]!.clientUrl);
    await poll(
      async () => {
        for (const i of indices) {
          const p = this.etcdProcs[i];
          if (p?.status) {
            throw new PollAbort(new Error(`etcd ${this.members[i]!.name} exited (${fmtExit(p.status)}):\n${tail(p.logPath)}`));
          }
        }
        return (await this.etcdctl(['--command-timeout=1s', 'endpoint', 'health'], { endpoints })).exitCode === 0;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `etcd at ${endpoints.join(',')}` },
    );
  }

  async startEtcd(): Promise<void> {
    // Members of a new cluster wait for each other: all start before any can be healthy.
    this.members.forEach((_, i) => this.launchMember(i));
    await this.waitMembersHealthy(this.members.map((_, i) => i));
  }

  /** Root plus the configured user, whose role covers the prefix; then auth on. */
  async enableAuth(): Promise<void> {
    const a = this.etcdAuth!;
    const steps = etcdAuthSteps({ ...a, rootPassword: this.rootPassword, role: `${a.user}-rw`, prefix: this.etcdPrefix });
    for (const { args, input, mayFail } of steps) {
      const r = await this.etcdctl(args, input !== undefined ? { input } : {});
      if (r.exitCode !== 0 && !mayFail) throw new Error(`etcdctl ${args[0]} ${args[1]} failed while enabling auth: ${r.stderr.trim()}`);
    }
    this.authEnabled = true;
  }

  /** Stops every etcd member (SIGTERM) keeping its data, as an outage; startEtcdAgain() brings them back. */
  async stopEtcd(): Promise<void> {
    await Promise.all(this.etcdProcs.map((p) => (p ? stopProcess(p, 'SIGTERM', this.graceMs) : undefined)));
  }

  /** Restarts every etcd member on the same data dirs and addresses after stopEtcd(). */
  async startEtcdAgain(): Promise<void> {
    if (this.members.some((_, i) => this.memberRunning(i))) throw new Error('etcd is still running');
    await this.startEtcd();
  }

  /** Freezes etcd (SIGSTOP): connections stay open but nothing answers, a black hole. */
  pauseEtcd(): void {
    for (const p of this.etcdProcs) if (p && !p.status) p.proc.kill('SIGSTOP');
  }

  resumeEtcd(): void {
    for (const p of this.etcdProcs) if (p && !p.status) p.proc.kill('SIGCONT');
  }

  /** Kills one member (SIGKILL by default) and waits until it has exited; its data dir stays. */
  async killEtcdMember(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.memberSpec(i);
    const p = this.etcdProcs[i];
    if (!p || p.status) return;
    if (signal !== 'SIGKILL') p.proc.kill('SIGCONT');
    await stopProcess(p, signal, this.graceMs);
  }

  /** Starts a killed member again on its data dir, so it rejoins; waits until it serves. */
  async startEtcdMember(i: number): Promise<void> {
    this.memberSpec(i);
    if (this.memberRunning(i)) throw new Error(`etcd ${this.members[i]!.name} is still running`);
    this.launchMember(i);
    await this.waitMembersHealthy([i]);
  }

  /**
   * The index of the member that every running member names as leader, from `etcdctl endpoint
   * status -w json`; waits (up to timeoutMs) through an election.
   */
  async etcdLeader(timeoutMs = 15_000): Promise<number> {
    const found = await poll(
      async () => {
        const running = this.members.flatMap((m, i) => (this.memberRunning(i) ? [m.clientUrl] : []));
        const r = await this.etcdctl(['--command-timeout=1s', 'endpoint', 'status', '-w', 'json'], { endpoints: running });
        if (r.exitCode !== 0) return undefined;
        const leader = agreedLeader(parseEndpointStatus(r.stdout), running.length);
        const index = leader ? this.etcdEndpoints.indexOf(leader) : -1;
        return index >= 0 ? { index } : undefined;
      },
      { timeoutMs, intervalMs: 100, what: 'the etcd members to agree on a leader' },
    );
    return found.index;
  }

  private memberSpec(i: number): EtcdMemberSpec {
    const m = this.members[i];
    if (!m) throw new Error(`no etcd member ${i} (0..${this.members.length - 1})`);
    return m;
  }

  get etcdPid(): number | undefined {
    return this.etcdProcs[0]?.pid;
  }

  /** Process id of member i while it runs. */
  etcdMemberPid(i: number): number | undefined {
    return this.memberRunning(i) ? this.etcdProcs[i]!.pid : undefined;
  }

  /** Everything member i has logged (all its starts). */
  etcdLog(i = 0): string {
    const path = this.memberSpec(i).logPath;
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  /**
   * Connection flags for `weft` and `weft agent`: all endpoints, and on a TLS or auth testbed
   * the CA, client certificate and key, username and password file.
   */
  etcdFlags(opts: EtcdFlagOptions = {}): string[] {
    const flags = ['--etcd-endpoints', this.etcdEndpoints.join(',')];
    if (this.pki) {
      flags.push('--etcd-cafile', this.pki.ca);
      if (opts.clientCert !== false) flags.push('--etcd-certfile', this.pki.client.cert, '--etcd-keyfile', this.pki.client.key);
    }
    if (this.etcdAuth && opts.auth !== false) {
      flags.push('--etcd-username', this.etcdAuth.user, '--etcd-password-file', opts.passwordFile ?? this.etcdPasswordFile!);
    }
    return flags;
  }

  /** etcdctl's global flags; as root on an auth testbed, whose password goes in the environment. */
  private etcdctlInvocation(endpoints: string[] = this.etcdEndpoints): { flags: string[]; env: Record<string, string> } {
    const pki = this.pki;
    return {
      flags: [
        '--endpoints', endpoints.join(','),
        ...(pki ? ['--cacert', pki.ca, '--cert', pki.client.cert, '--key', pki.client.key] : []),
      ],
      env: this.authEnabled ? { ETCDCTL_USER: `root:${this.rootPassword}` } : {},
    };
  }

  /**
   * Runs etcdctl against the testbed's etcd (every member unless endpoints are given), from the
   * underlay or from another namespace.
   */
  async etcdctl(args: string[], opts: { from?: string; input?: string; endpoints?: string[] } = {}): Promise<RunResult> {
    const ns = opts.from ?? this.underlay;
    const { flags, env } = this.etcdctlInvocation(opts.endpoints);
    return runIn(ns, 'etcdctl', [...flags, ...args], { env, ...(opts.input !== undefined ? { input: opts.input } : {}) });
  }

  /**
   * A running `etcdctl watch --prefix PREFIX` from the underlay over every member (it resumes
   * on another member when its own dies); stopped at teardown at the latest.
   */
  watchPrefix(prefix: string): WatchHandle {
    const { flags, env } = this.etcdctlInvocation();
    const proc = spawn('ip', ['netns', 'exec', this.underlay, 'etcdctl', ...flags, 'watch', '--prefix', prefix], {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, ...env },
    });
    this.watches.add(proc);
    proc.once('exit', () => this.watches.delete(proc));
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
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

  /** Teardown: kills the watches; stops every member (a paused one is resumed first). */
  killWatches(): void {
    for (const p of this.watches) p.kill('SIGKILL');
  }

  async stopForTeardown(attempt: (f: () => Promise<unknown>) => Promise<void>): Promise<void> {
    await Promise.all(
      this.etcdProcs.map(async (etcd) => {
        if (!etcd) return;
        if (!etcd.status) etcd.proc.kill('SIGCONT'); // a paused etcd would sit out the grace period
        await attempt(() => stopProcess(etcd, 'SIGTERM', this.graceMs));
      }),
    );
  }
}
