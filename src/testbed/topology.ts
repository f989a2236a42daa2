// A multi-host testbed on one machine: an underlay namespace with a bridge and a real etcd,
// host namespaces (each its own kernel routing state, where `weft agent` runs), and per host
// "container" namespaces on a bridge addressed from the host's subnet.env.
//
//   weft-<id>-ul   br0 192.0.2.254/24, etcd at http://192.0.2.254:2379
//   weft-<id>-h1   eth0 192.0.2.1/24 (veth to br0), agent, cni0 = FLANNEL_SUBNET
//   weft-<id>-c1   eth0 on h1's cni0 (.2 of the subnet), default route via cni0's address
//
// By default every host shares one L2 segment (what host-gw and directRouting need). Hosts can
// also be put on other segments (198.51.100.0/24, 203.0.113.0/24) that the underlay routes
// between, for peers that are not on-link. Nothing here touches the root namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ipv4 } from '../alloc/cidr.js';
import {
  createNetns,
  deleteNetns,
  execIn,
  ipBatch,
  newRunId,
  nsName,
  nsPrefix,
  removeLeftovers,
  setSysctl,
  vethLines,
  type RunResult,
} from './netns.js';
import { parsePingStream, parsePingSummary, parseSubnetEnv, type PingResult, type PingStreamResult, type SubnetEnvFile } from './parse.js';
import { poll, PollAbort } from './poll.js';
import { WEFT_BIN } from './paths.js';

/** Underlay segments: index 0 is the shared L2 everyone is on by default. */
export const SEGMENTS = ['192.0.2', '198.51.100', '203.0.113'] as const;
export const UNDERLAY_IP = `${SEGMENTS[0]}.254`;

export interface TestbedOptions {
  /** Short id for names; a fresh one by default. Reusing an id replaces that run's leftovers. */
  runId?: string;
  etcdClientPort?: number;
  /** Directory for etcd data, subnet files and logs; a fresh temp dir by default. */
  workDir?: string;
  /** Keep workDir at teardown (also settable later, on the instance). */
  keepWorkDir?: boolean;
  /** The `weft` executable (a node script); <repo>/bin/weft by default. */
  weftBin?: string;
  /** How long an agent or etcd gets after SIGTERM before SIGKILL. */
  graceMs?: number;
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

export interface Host {
  index: number;
  name: string;
  ns: string;
  ip: string;
  segment: number;
  dir: string;
  subnetFile: string;
  agent?: RunningProcess;
  containers: Container[];
}

export interface Container {
  name: string;
  ns: string;
  ip: string;
  host: Host;
}

/** Anything a command can run in: a host, a container, or a namespace name. */
export type Place = Host | Container | string;
const nsOf = (p: Place): string => (typeof p === 'string' ? p : p.ns);

export interface PingHandle {
  /** Stops the ping (SIGINT) and reports what it saw, per sequence number. */
  stop(): Promise<PingStreamResult>;
}

export class Testbed {
  readonly runId: string;
  readonly underlay: string;
  readonly etcdEndpoint: string;
  readonly workDir: string;
  readonly hosts = new Map<number, Host>();
  private etcd?: RunningProcess;
  private readonly pings = new Set<ChildProcess>();
  private readonly namespaces: string[] = [];
  private readonly segmentsUp = new Set<number>();
  private readonly weftBin: string;
  private readonly graceMs: number;
  private teardownDone?: Promise<void>;
  /** Keep workDir at teardown; the demo sets it after a failure so the logs stay readable. */
  keepWorkDir: boolean;

  private constructor(opts: TestbedOptions) {
    this.runId = opts.runId ?? newRunId();
    this.underlay = nsName(this.runId, 'ul');
    this.etcdEndpoint = `http://${UNDERLAY_IP}:${opts.etcdClientPort ?? 2379}`;
    if (opts.workDir) {
      this.workDir = opts.workDir; // emptied in create(), once no stale process can write to it
    } else {
      this.workDir = mkdtempSync(join(tmpdir(), `weft-testbed-${this.runId}-`));
    }
    this.weftBin = opts.weftBin ?? WEFT_BIN;
    this.graceMs = opts.graceMs ?? 5000;
    this.keepWorkDir = opts.keepWorkDir ?? false;
  }

  /** Builds the underlay and starts etcd in it. On failure everything made so far is removed. */
  static async create(opts: TestbedOptions = {}): Promise<Testbed> {
    const tb = new Testbed(opts);
    try {
      await removeLeftovers(nsPrefix(tb.runId));
      if (opts.workDir) {
        rmSync(opts.workDir, { recursive: true, force: true });
        mkdirSync(opts.workDir, { recursive: true });
      }
      await tb.addNamespace(tb.underlay);
      await setSysctl(tb.underlay, 'net.ipv4.ip_forward', '1');
      await tb.ensureSegment(0);
      await tb.startEtcd();
    } catch (err) {
      await tb.teardown().catch(() => {});
      throw err;
    }
    return tb;
  }

  private async addNamespace(ns: string): Promise<void> {
    this.namespaces.push(ns);
    await createNetns(ns);
  }

  private async ensureSegment(segment: number): Promise<void> {
    if (this.segmentsUp.has(segment)) return;
    const prefix = SEGMENTS[segment];
    if (prefix === undefined) throw new Error(`no underlay segment ${segment} (0..${SEGMENTS.length - 1})`);
    await ipBatch(this.underlay, [
      `link add br${segment} type bridge`,
      `addr add ${prefix}.254/24 dev br${segment}`,
      `link set br${segment} up`,
    ]);
    this.segmentsUp.add(segment);
  }

  // --- etcd -------------------------------------------------------------------------------

  private async startEtcd(): Promise<void> {
    const dataDir = join(this.workDir, 'etcd');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // The namespace is ours alone, so fixed ports are free; the peer URL stays on its loopback.
    const peer = 'http://127.0.0.1:2380';
    const args = [
      '--name', 'testbed',
      '--data-dir', dataDir,
      '--listen-client-urls', this.etcdEndpoint,
      '--advertise-client-urls', this.etcdEndpoint,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `testbed=${peer}`,
      '--log-level', 'error',
    ];
    this.etcd = this.spawnIn(this.underlay, 'etcd', args, join(this.workDir, 'etcd.log'));
    const etcd = this.etcd;
    await poll(
      async () => {
        if (etcd.status) throw new PollAbort(new Error(`etcd exited (${fmtExit(etcd.status)}):\n${tail(etcd.logPath)}`));
        return (await this.etcdctl(['--command-timeout=1s', 'endpoint', 'health'])).exitCode === 0;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: `etcd at ${this.etcdEndpoint}` },
    );
  }

  /** Stops etcd (SIGTERM) keeping its data, as an outage; startEtcdAgain() brings it back. */
  async stopEtcd(): Promise<void> {
    if (this.etcd) await stopProcess(this.etcd, 'SIGTERM', this.graceMs);
  }

  /** Restarts etcd on the same data dir and address after stopEtcd(). */
  async startEtcdAgain(): Promise<void> {
    if (this.etcd && !this.etcd.status) throw new Error('etcd is still running');
    await this.startEtcd();
  }

  /** Freezes etcd (SIGSTOP): connections stay open but nothing answers, a black hole. */
  pauseEtcd(): void {
    this.etcd?.proc.kill('SIGSTOP');
  }

  resumeEtcd(): void {
    this.etcd?.proc.kill('SIGCONT');
  }

  get etcdPid(): number | undefined {
    return this.etcd?.pid;
  }

  /** Runs etcdctl against the testbed's etcd, from the underlay or from another namespace. */
  async etcdctl(args: string[], opts: { from?: Place; input?: string } = {}): Promise<RunResult> {
    const ns = opts.from === undefined ? this.underlay : nsOf(opts.from);
    return execIn(ns, 'etcdctl', ['--endpoints', this.etcdEndpoint, ...args], opts.input !== undefined ? { input: opts.input } : {});
  }

  /** Runs the weft CLI (`weft ARGS... --etcd-endpoints URL`), from the underlay by default. */
  async weft(args: string[], opts: { from?: Place; endpoints?: boolean } = {}): Promise<RunResult> {
    const ns = opts.from === undefined ? this.underlay : nsOf(opts.from);
    const endpoint = opts.endpoints === false ? [] : ['--etcd-endpoints', this.etcdEndpoint];
    return execIn(ns, process.execPath, [this.weftBin, ...args, ...endpoint]);
  }

  // --- hosts ------------------------------------------------------------------------------

  /** Creates host namespace hN with eth0 = <segment>.N/24 on the underlay, forwarding on. */
  async addHost(index: number, opts: { segment?: number } = {}): Promise<Host> {
    if (!Number.isInteger(index) || index < 1 || index > 253) throw new Error(`host index must be 1..253, got ${index}`);
    if (this.hosts.has(index)) throw new Error(`host ${index} exists`);
    const segment = opts.segment ?? 0;
    await this.ensureSegment(segment);
    const name = `h${index}`;
    const ns = nsName(this.runId, name);
    const ip = `${SEGMENTS[segment]}.${index}`;
    const dir = join(this.workDir, name);
    mkdirSync(dir, { recursive: true });
    const host: Host = { index, name, ns, ip, segment, dir, subnetFile: join(dir, 'subnet.env'), containers: [] };
    this.hosts.set(index, host);
    await this.addNamespace(ns);
    await ipBatch(this.underlay, vethLines(`v-${name}`, ns, 'eth0', { master: `br${segment}` }));
    // The default route lets an agent without --iface find its uplink, as on a real host;
    // it leads only into the underlay namespace, which has no way out.
    await ipBatch(ns, [
      `addr add ${ip}/24 dev eth0`,
      'link set eth0 up',
      `route add default via ${SEGMENTS[segment]}.254`,
    ]);
    await setSysctl(ns, 'net.ipv4.ip_forward', '1');
    return host;
  }

  /** Takes a host off the underlay: stops its agent, deletes its containers and its namespace. */
  async removeHost(host: Host): Promise<void> {
    await this.stopAgent(host);
    for (const c of host.containers) await deleteNetns(c.ns);
    await deleteNetns(host.ns);
    const gone = new Set([host.ns, ...host.containers.map((c) => c.ns)]);
    this.namespaces.splice(0, this.namespaces.length, ...this.namespaces.filter((n) => !gone.has(n)));
    this.hosts.delete(host.index);
  }

  host(index: number): Host {
    const h = this.hosts.get(index);
    if (!h) throw new Error(`no host ${index}`);
    return h;
  }

  // --- agents -----------------------------------------------------------------------------

  /**
   * Starts `weft agent` inside the host's namespace with its own subnet file, logging to
   * <workDir>/hN/agent.log. extraArgs come last, so they can add to or override the defaults.
   */
  startAgent(host: Host, extraArgs: string[] = [], opts: { iface?: string | false; env?: Record<string, string> } = {}): RunningProcess {
    if (host.agent && !host.agent.status) throw new Error(`agent on ${host.name} is running (pid ${host.agent.pid})`);
    const iface = opts.iface === false ? [] : ['--iface', opts.iface ?? 'eth0'];
    const args = [
      this.weftBin,
      'agent',
      '--etcd-endpoints', this.etcdEndpoint,
      ...iface,
      '--subnet-file', host.subnetFile,
      '--node-name', host.name,
      ...extraArgs,
    ];
    host.agent = this.spawnIn(host.ns, process.execPath, args, join(host.dir, 'agent.log'), opts.env);
    return host.agent;
  }

  /** Signals the agent and waits for it to exit; after SIGTERM, SIGKILL follows a grace period. */
  async stopAgent(host: Host, signal: NodeJS.Signals = 'SIGTERM', graceMs = this.graceMs): Promise<ExitStatus | undefined> {
    const agent = host.agent;
    if (!agent) return undefined;
    return stopProcess(agent, signal, graceMs);
  }

  agentLog(host: Host): string {
    return host.agent && existsSync(host.agent.logPath) ? readFileSync(host.agent.logPath, 'utf8') : '';
  }

  /** The host's subnet.env, parsed; undefined while the file does not exist. */
  readSubnetEnv(host: Host): SubnetEnvFile | undefined {
    let text: string;
    try {
      text = readFileSync(host.subnetFile, 'utf8');
    } catch {
      return undefined;
    }
    return parseSubnetEnv(text);
  }

  /** Waits for subnet.env to appear; fails at once with the log tail if the agent exits. */
  async waitForSubnetEnv(host: Host, timeoutMs = 20_000): Promise<SubnetEnvFile> {
    return poll(
      () => {
        const agent = host.agent;
        if (agent?.status) {
          throw new PollAbort(new Error(`agent on ${host.name} exited (${fmtExit(agent.status)}):\n${tail(agent.logPath)}`));
        }
        return this.readSubnetEnv(host);
      },
      { timeoutMs, intervalMs: 100, what: `${host.subnetFile}` },
    );
  }

  /**
   * GETs a URL from inside a namespace (e.g. the agent's healthz on 127.0.0.1). Runs node there,
   * since a fresh machine need not have curl. Returns the status, or 0 when nothing answered.
   */
  async httpGet(from: Place, url: string): Promise<{ status: number; body: string }> {
    const script =
      'fetch(process.argv[1],{signal:AbortSignal.timeout(2000)}).then(async r=>{process.stdout.write(JSON.stringify({status:r.status,body:await r.text()}))},()=>process.stdout.write(\'{"status":0,"body":""}\'))';
    const r = await execIn(nsOf(from), process.execPath, ['-e', script, url]);
    try {
      const v = JSON.parse(r.stdout) as { status?: unknown; body?: unknown };
      return { status: typeof v.status === 'number' ? v.status : 0, body: typeof v.body === 'string' ? v.body : '' };
    } catch {
      return { status: 0, body: '' };
    }
  }

  // --- containers -------------------------------------------------------------------------

  /**
   * Creates container namespace cN (or cN-S for slot S > 1) attached to the host's bridge
   * cni0, as Docker --bip or the flannel CNI bridge plugin would: cni0 gets FLANNEL_SUBNET and
   * FLANNEL_MTU, the container gets address subnet+1+slot and a default route via cni0.
   * The subnet comes from the host's subnet.env unless given.
   */
  async addContainer(host: Host, opts: { env?: SubnetEnvFile; slot?: number } = {}): Promise<Container> {
    const env = opts.env ?? this.readSubnetEnv(host);
    if (!env) throw new Error(`${host.name} has no subnet.env yet (${host.subnetFile})`);
    const slot = opts.slot ?? 1;
    const name = slot === 1 ? `c${host.index}` : `c${host.index}-${slot}`;
    const ns = nsName(this.runId, name);
    const ip = env.subnet.network.add(1 + slot);
    if (!Number.isInteger(slot) || slot < 1 || !env.subnet.contains(ip) || ip.value === env.subnet.last) {
      throw new Error(`slot ${slot} does not fit in ${env.subnet}`);
    }
    if (host.containers.some((c) => c.name === name)) throw new Error(`container ${name} exists`);
    const bridge = `${env.bridgeIp}/${env.subnet.prefix}`;
    await this.addNamespace(ns);
    const lines: string[] = [];
    if (host.containers.length === 0) {
      lines.push('link add cni0 type bridge', `addr add ${bridge} dev cni0`, `link set cni0 mtu ${env.mtu} up`);
    }
    lines.push(...vethLines(`v-${name}`, ns, 'eth0', { master: 'cni0', mtu: env.mtu }));
    await ipBatch(host.ns, lines);
    await ipBatch(ns, [
      `addr add ${ip}/${env.subnet.prefix} dev eth0`,
      'link set eth0 up',
      `route add default via ${env.bridgeIp}`,
    ]);
    const c: Container = { name, ns, ip: ip.toString(), host };
    host.containers.push(c);
    return c;
  }

  // --- traffic ----------------------------------------------------------------------------

  /** Pings and parses the summary. Never throws for unreachable targets: look at received. */
  async ping(from: Place, to: string, opts: { count?: number; intervalSec?: number; waitSec?: number } = {}): Promise<PingResult> {
    if (!Ipv4.parse(to)) throw new Error(`not an IPv4 address: ${to}`);
    const args = ['-n', '-q', '-c', String(opts.count ?? 3), '-i', String(opts.intervalSec ?? 0.2), '-W', String(opts.waitSec ?? 1), to];
    const r = await execIn(nsOf(from), 'ping', args);
    return parsePingSummary(r.stdout, r.stderr);
  }

  /** Polls single pings until one is answered; returns how long that took, in ms. */
  async waitReachable(from: Place, to: string, timeoutMs = 10_000): Promise<number> {
    const t0 = Date.now();
    await poll(async () => (await this.ping(from, to, { count: 1, waitSec: 0.5 })).received === 1, {
      timeoutMs,
      intervalMs: 20,
      what: `${to} to answer pings from ${typeof from === 'string' ? from : from.name}`,
    });
    return Date.now() - t0;
  }

  /** A ping left running (every intervalMs, 1 s reply timeout) until stop(). */
  startPing(from: Place, to: string, intervalMs = 50): PingHandle {
    if (!Ipv4.parse(to)) throw new Error(`not an IPv4 address: ${to}`);
    const interval = (intervalMs / 1000).toFixed(3);
    const proc = spawn('ip', ['netns', 'exec', nsOf(from), 'ping', '-n', '-O', '-i', interval, '-W', '1', to], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.pings.add(proc);
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
        this.pings.delete(proc);
        return parsePingStream(stdout, stderr);
      },
    };
  }

  // --- lifecycle --------------------------------------------------------------------------

  private spawnIn(ns: string, cmd: string, args: string[], logPath: string, env?: Record<string, string>): RunningProcess {
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

  /**
   * Stops agents (SIGTERM, SIGKILL after the grace period), pings and etcd, deletes every
   * namespace of this run and the work dir. Safe to call twice and after a partial create;
   * it tries every step and reports all failures together.
   */
  teardown(): Promise<void> {
    this.teardownDone ??= this.doTeardown();
    return this.teardownDone;
  }

  private async doTeardown(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (err) {
        errors.push(err);
      }
    };
    for (const p of this.pings) p.kill('SIGKILL');
    await Promise.all([...this.hosts.values()].map((h) => attempt(() => this.stopAgent(h))));
    if (this.etcd) {
      const etcd = this.etcd;
      if (!etcd.status) etcd.proc.kill('SIGCONT'); // a paused etcd would sit out the grace period
      await attempt(() => stopProcess(etcd, 'SIGTERM', this.graceMs));
    }
    for (const ns of [...this.namespaces].reverse()) await attempt(() => deleteNetns(ns));
    await attempt(() => removeLeftovers(nsPrefix(this.runId)));
    if (!this.keepWorkDir) await attempt(async () => rmSync(this.workDir, { recursive: true, force: true }));
    if (errors.length) throw new AggregateError(errors, `testbed ${this.runId} teardown: ${errors.map(String).join('; ')}`);
  }
}

async function stopProcess(p: RunningProcess, signal: NodeJS.Signals, graceMs: number): Promise<ExitStatus> {
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

function fmtExit(s: ExitStatus): string {
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
