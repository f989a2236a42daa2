// The one etcd supervisor for tests: real etcd servers on loopback, free ports, throwaway
// data dirs. startEtcdCluster runs N members that can be killed, paused and restarted one at a
// time, with the leader found by asking etcd; startEtcd is the one-member case most tests use;
// useEtcd gives a test file one server for its lifetime. Every process is killed and every
// data dir removed by stop()/destroy(), and the processes are also killed if the test process
// exits without calling them. What etcd needs (a member's command line, reading endpoint
// status, leader agreement, the auth steps) is src/testbed/etcd.ts, shared with the testbed,
// which runs its members inside its underlay namespace with logs in its work dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { encodeFlannelConfig, resolveNetworkOrThrow, type NetworkConfig } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';
import { Store } from '../../src/store/store.js';
import {
  agreedLeader,
  etcdAuthSteps,
  etcdMemberArgs,
  parseEndpointStatus,
  type EndpointStatus,
  type EtcdAuthSetup,
} from '../../src/testbed/etcd.js';
import { waitFor } from './wait.js';

/** One etcd server (a one-member cluster). */
export interface EtcdServer {
  endpoint: string;
  readonly process: ChildProcess;
  /** Stops the server and deletes its data; keepData: stops it (SIGTERM) for a later restart(). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** Restarts on the same port and data dir (SIGTERM first); waits until it serves. */
  restart(): Promise<void>;
  /** Freezes the server (SIGSTOP): its sockets stay open but nothing answers. */
  pause(): void;
  resume(): void;
  logs(): string;
  /** The TLS material the server was started with, if any. */
  tls?: EtcdTls;
  /** Runs etcdctl against this server (TLS flags added); resolves stdout, rejects on failure. */
  etcdctl(args: string[], opts?: EtcdctlOptions): Promise<string>;
}

export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
  /** Require clients to present a certificate signed by `ca` (etcd --client-cert-auth). */
  clientCertAuth?: boolean;
  /** The client certificate the harness itself uses (health checks, etcdctl). */
  client?: { cert: string; key: string };
}

export interface EtcdctlOptions {
  /** "name:password" for etcd auth. */
  user?: string;
  /** Fed on stdin (e.g. a password with --interactive=false, so it never shows in ps). */
  input?: string;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  readonly process: ChildProcess | undefined;
  readonly running: boolean;
  logs(): string;
}

export interface MemberStatus extends EndpointStatus {
  index: number;
}

export interface EtcdCluster {
  /** Client URLs of all members, in member order. */
  endpoints: string[];
  members: EtcdMember[];
  tls?: EtcdTls;
  /** Sends a signal (default SIGKILL) and waits until the member has exited. */
  kill(index: number, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a stopped member again on its ports and data dir; waits until it serves. */
  restart(index: number): Promise<void>;
  /** Resumes paused members and starts stopped ones (e.g. after a failed test); waits until healthy. */
  reviveAll(): Promise<void>;
  /** Freezes a member (SIGSTOP): its sockets stay open but nothing answers. */
  pause(index: number): void;
  resume(index: number): void;
  /** `endpoint status` of every running member that answers. */
  status(): Promise<MemberStatus[]>;
  /** Index of the member that running members agree is the leader (waits for one). */
  leader(opts?: { timeoutMs?: number }): Promise<number>;
  /** Hands leadership to a member (etcdctl move-leader) and waits until all agree. */
  moveLeader(index: number): Promise<void>;
  /** A gauge from a member's /metrics, e.g. etcd_debugging_mvcc_watch_stream_total (http only). */
  metric(index: number, name: string): Promise<number>;
  /** Waits until every running member answers and they agree on a leader. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  etcdctl(args: string[], opts?: EtcdctlOptions & { endpoints?: string[] }): Promise<string>;
  /** Kills every member and removes every data dir. Safe to call twice. */
  destroy(): Promise<void>;
}

export interface StartEtcdOptions {
  /** Members; 3 by default (startEtcd: 1). */
  size?: number;
  tls?: EtcdTls;
  /** Raft timings, etcd's defaults (100/1000) unless given: shorter ones flap on a busy 2-core CI box. */
  heartbeatMs?: number;
  electionMs?: number;
  extraArgs?: string[];
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test process dies before afterAll: never leave etcd members behind.
  process.once('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

export async function startEtcdCluster(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchCluster(opts);
    } catch (err) {
      // freePort() lets go of a port before etcd binds it: another test file may take it first.
      if (attempt < 3 && /address already in use/.test((err as Error).message)) continue;
      throw err;
    }
  }
}

async function launchCluster(opts: StartEtcdOptions): Promise<EtcdCluster> {
  installExitHook();
  const size = opts.size ?? 3;
  const tls = opts.tls;
  const scheme = tls ? 'https' : 'http';
  const token = `weft-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const ports = await distinctFreePorts(size * 2);
  const dirs: string[] = [];
  const members = Array.from({ length: size }, (_, i) => {
    const dataDir = mkdtempSync(join(tmpdir(), `weft-etcd${i}-`));
    dirs.push(dataDir);
    return {
      name: `m${i}`,
      clientUrl: `${scheme}://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir,
    };
  });
  const procs: (ChildProcess | undefined)[] = members.map(() => undefined);
  const output: string[] = members.map(() => '');

  const argsFor = (i: number): string[] =>
    etcdMemberArgs(i, members, {
      token,
      ...(tls ? { tls } : {}),
      ...(opts.heartbeatMs !== undefined ? { heartbeatMs: opts.heartbeatMs } : {}),
      ...(opts.electionMs !== undefined ? { electionMs: opts.electionMs } : {}),
      ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
    });

  const launch = (i: number): void => {
    const p = spawn('etcd', argsFor(i), { stdio: ['ignore', 'pipe', 'pipe'] });
    procs[i] = p;
    live.add(p);
    p.once('exit', () => live.delete(p));
    const append = (d: Buffer) => (output[i] = ((output[i] ?? '') + d).slice(-20000));
    p.stdout!.on('data', append);
    p.stderr!.on('data', append);
  };

  const isRunning = (i: number): boolean => {
    const p = procs[i];
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  };

  const ctl = (args: string[], o: EtcdctlOptions & { endpoints?: string[] } = {}) =>
    etcdctl(o.endpoints ?? members.filter((_, i) => isRunning(i)).map((m) => m.clientUrl), args, {
      ...o,
      ...(tls ? { tls } : {}),
    });

  const statusOf = async (i: number): Promise<MemberStatus | undefined> => {
    // One etcdctl per member: a member that does not answer leaves out only its own entry.
    const out = await ctl(['endpoint', 'status', '-w', 'json'], { endpoints: [members[i]!.clientUrl] }).catch(() => '');
    const [entry] = parseEndpointStatus(out);
    return entry && { ...entry, index: i };
  };

  const status = async (): Promise<MemberStatus[]> => {
    const all = await Promise.all(members.map((_, i) => (isRunning(i) ? statusOf(i) : undefined)));
    return all.filter((s): s is MemberStatus => s !== undefined);
  };

  /** The leader's index when every running member answers and names the same live leader. */
  const leaderIndex = async (): Promise<number | undefined> => {
    const running = members.map((_, i) => i).filter(isRunning);
    const endpoint = agreedLeader(await status(), running.length);
    return endpoint === undefined ? undefined : members.findIndex((m) => m.clientUrl === endpoint);
  };

  const leader = (o: { timeoutMs?: number } = {}) =>
    waitFor(async () => {
      const l = await leaderIndex();
      return l === undefined ? undefined : { l };
    }, { timeoutMs: o.timeoutMs ?? 15000, intervalMs: 100, what: 'the etcd members to agree on a leader' }).then((r) => r.l);

  const waitHealthy = async (timeoutMs = 20000): Promise<void> => {
    await waitFor(
      async () => {
        for (let i = 0; i < size; i++) {
          const p = procs[i];
          if (p && p.exitCode !== null && p.exitCode !== 0) {
            throw new Error(`etcd member ${members[i]!.name} exited ${p.exitCode}:\n${output[i]}`);
          }
        }
        return (await leaderIndex()) !== undefined;
      },
      { timeoutMs, intervalMs: 100, what: 'the etcd cluster to be healthy' },
    );
  };

  const kill = async (i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const p = procs[i];
    if (!p || !isRunning(i)) return;
    const exited = new Promise((r) => p.once('exit', r));
    if (signal !== 'SIGKILL') p.kill('SIGCONT');
    p.kill(signal);
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  const moveLeader = async (target: number): Promise<void> => {
    const current = await leader();
    if (current === target) return;
    const st = await statusOf(target);
    if (!st) throw new Error(`etcd member ${members[target]!.name} does not answer`);
    // move-leader takes the id in hex and must be sent to the current leader.
    await ctl(['move-leader', BigInt(st.memberId).toString(16)], { endpoints: [members[current]!.clientUrl] });
    await waitFor(async () => (await leaderIndex()) === target, {
      timeoutMs: 10000,
      intervalMs: 100,
      what: `member ${members[target]!.name} to lead`,
    });
  };

  const metric = async (i: number, name: string): Promise<number> => {
    if (tls) throw new Error('metric() reads /metrics over plain http only');
    const res = await fetch(`${members[i]!.clientUrl}/metrics`, { signal: AbortSignal.timeout(2000) });
    const line = (await res.text()).split('\n').find((l) => l.startsWith(name + ' '));
    if (!line) throw new Error(`etcd member ${members[i]!.name} has no metric ${name}`);
    return Number(line.slice(name.length + 1));
  };

  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(members.map((_, i) => kill(i)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };

  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.clientUrl),
    members: members.map((m, i) => ({
      ...m,
      get process() {
        return procs[i];
      },
      get running() {
        return isRunning(i);
      },
      logs: () => output[i]!,
    })),
    ...(tls ? { tls } : {}),
    kill,
    async restart(i) {
      await kill(i, 'SIGTERM');
      launch(i);
      await waitHealthy();
    },
    async reviveAll() {
      for (let i = 0; i < size; i++) {
        if (isRunning(i)) procs[i]!.kill('SIGCONT');
        else launch(i);
      }
      await waitHealthy();
    },
    pause(i) {
      procs[i]?.kill('SIGSTOP');
    },
    resume(i) {
      procs[i]?.kill('SIGCONT');
    },
    status,
    leader,
    moveLeader,
    metric,
    waitHealthy,
    etcdctl: ctl,
    destroy,
  };

  try {
    for (let i = 0; i < size; i++) launch(i);
    await waitHealthy();
    return cluster;
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** One etcd server: a one-member cluster seen through the EtcdServer interface. */
export async function startEtcd(opts: Omit<StartEtcdOptions, 'size'> = {}): Promise<EtcdServer> {
  const cluster = await startEtcdCluster({ ...opts, size: 1 });
  const member = cluster.members[0]!;
  return {
    endpoint: cluster.endpoints[0]!,
    get process() {
      return member.process!;
    },
    stop: (o = {}) => (o.keepData ? cluster.kill(0, 'SIGTERM') : cluster.destroy()),
    restart: () => cluster.restart(0),
    pause: () => cluster.pause(0),
    resume: () => cluster.resume(0),
    logs: () => member.logs(),
    ...(opts.tls ? { tls: opts.tls } : {}),
    etcdctl: (args, o) => cluster.etcdctl(args, o),
  };
}

/** etcdctl (API v3) against the given endpoints; TLS flags from tls. */
export async function etcdctl(
  endpoints: string[],
  args: string[],
  opts: EtcdctlOptions & { tls?: EtcdTls } = {},
): Promise<string> {
  const { execa } = await import('execa');
  const argv = [
    '--endpoints', endpoints.join(','),
    '--dial-timeout=2s',
    '--command-timeout=5s',
    ...(opts.tls ? ['--cacert', opts.tls.ca] : []),
    ...(opts.tls?.client ? ['--cert', opts.tls.client.cert, '--key', opts.tls.client.key] : []),
    ...(opts.user ? ['--user', opts.user] : []),
    ...args,
  ];
  const r = await execa('etcdctl', argv, {
    env: { ETCDCTL_API: '3' },
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    timeout: 15000,
  });
  return r.stdout;
}

/**
 * Creates root and a user whose role may read and write only under prefix, then turns auth
 * on (the testbed's steps). Passwords go over stdin so they never appear in a process listing.
 */
export async function enableAuth(etcd: Pick<EtcdServer, 'etcdctl'>, a: EtcdAuthSetup): Promise<void> {
  for (const { args, input, mayFail } of etcdAuthSteps(a)) {
    const done = etcd.etcdctl(args, input !== undefined ? { input } : {});
    await (mayFail ? done.catch(() => undefined) : done);
  }
}

// ---- one etcd per test file ----

export interface EtcdFixture {
  readonly etcd: EtcdServer;
  /** A client with no prefix of its own, for raw puts and reads. */
  readonly admin: Store;
  /** Writes a network config (as `weft apply` does) under a fresh prefix. */
  network(spec: NetworkSpec): Promise<{ prefix: string; config: NetworkConfig }>;
}

/** Starts one etcd for the calling test file (beforeAll) and stops it (afterAll). */
export function useEtcd(tag = 't'): EtcdFixture {
  let etcd: EtcdServer | undefined;
  let admin: Store | undefined;
  let n = 0;
  beforeAll(async () => {
    etcd = await startEtcd();
    admin = Store.connect({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    admin?.close();
    await etcd?.stop();
  });
  const fx: EtcdFixture = {
    get etcd() {
      return etcd!;
    },
    get admin() {
      return admin!;
    },
    async network(spec) {
      const prefix = `/${tag}${process.pid}-${++n}/network`;
      await fx.admin.client.put(`${prefix}/config`).value(encodeFlannelConfig(spec));
      return { prefix, config: resolveNetworkOrThrow('default', spec) };
    },
  };
  return fx;
}

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
