// A multi-host testbed on one machine: an underlay namespace with a bridge and a real etcd,
// host namespaces (each its own kernel routing state, where `weft agent` runs), and per host
// "container" namespaces on a bridge addressed from the host's subnet.env.
//
//   weft-<id>-ul   br0 192.0.2.254/24, etcd at http://192.0.2.254:2379 (3 members: :2379,
//                  :2381, :2383, peers on the namespace's loopback)
//   weft-<id>-h1   eth0 192.0.2.1/24 (veth to br0), agent, cni0 = FLANNEL_SUBNET
//   weft-<id>-c1   eth0 on h1's cni0 (.2 of the subnet), default route via cni0's address
//
// By default every host shares one L2 segment (what host-gw and directRouting need). Hosts can
// also be put on other segments (198.51.100.0/24, 203.0.113.0/24) that the underlay routes
// between, for peers that are not on-link. Nothing here touches the root namespace.
//
// The underlay stack is IPv4 by default. A 'dual' testbed adds an IPv6 address to every
// underlay interface (ULA: segment 0 is fd00:1::/64, br0 fd00:1::254, hN fd00:1::N); an
// 'ipv6' testbed has only those, and etcd then listens on http://[fd00:1::254]:2379. IPv6 is
// turned on (no duplicate address detection, forwarding in hosts and the underlay) through
// each namespace's own sysctls. A container gets an IPv6 address and default route too when
// its subnet.env has FLANNEL_IPV6_SUBNET, and no IPv4 when it has no FLANNEL_SUBNET.
//
// etcd can serve TLS with client-certificate auth (a throwaway PKI made with openssl in the work
// dir) and can have users and roles enabled; agents, the CLI and etcdctl then get the matching
// flags without the caller asking. Passwords travel in files (agents, CLI) or the environment
// (etcdctl), never on a command line.
//
// This file holds the namespaces, hosts, agents and containers; etcd is laid out in
// etcd-in-netns.ts and run by etcd-cluster.ts (the one etcd supervisor, shared with the tests),
// pings and HTTP GETs in traffic.ts, process start and stop in process.ts.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EtcdMember, WatchHandle } from './etcd-cluster.js';
import { EtcdInNetns, type EtcdFlagOptions } from './etcd-in-netns.js';
import {
  createNetns,
  deleteNetns,
  ipBatch,
  ipv6Sysctls,
  newRunId,
  nsName,
  nsPrefix,
  removeLeftovers,
  setSysctl,
  setSysctls,
  vethLines,
  type RunResult,
} from './netns.js';
import { parseAnySubnetEnv, parseSubnetEnv, type PingResult, type SubnetEnv, type SubnetEnvFile } from './parse.js';
import { poll, PollAbort } from './poll.js';
import { agentEnvOf, nodeFlagsOf, WEFT_BIN } from './paths.js';
import type { Pki } from './pki.js';
import { fmtExit, readIfExists, runIn, spawnIn, stopProcess, tail, type ExitStatus, type RunningProcess } from './process.js';
import * as traffic from './traffic.js';
import type { PingHandle, PingOptions } from './traffic.js';

/** Underlay segments: index 0 is the shared L2 everyone is on by default. */
export const SEGMENTS = ['192.0.2', '198.51.100', '203.0.113'] as const;
export const UNDERLAY_IP = `${SEGMENTS[0]}.254`;
/** The IPv6 /64 of each segment (unique local addresses), host N at <prefix>::N. */
export const SEGMENTS6 = ['fd00:1', 'fd00:2', 'fd00:3'] as const;
export const UNDERLAY_IP6 = `${SEGMENTS6[0]}::254`;

/** Which addresses the underlay carries: IPv4 only (the default), both, or IPv6 only. */
export type UnderlayStack = 'ipv4' | 'dual' | 'ipv6';

export interface TestbedOptions {
  /** Short id for names; a fresh one by default. Reusing an id replaces that run's leftovers. */
  runId?: string;
  /** Client port of the first etcd member; member i listens on this + 2i. */
  etcdClientPort?: number;
  /** One etcd (default) or a 3-member cluster, all in the underlay namespace. */
  etcdMembers?: 1 | 3;
  /** etcd serves https and requires client certificates from the testbed's CA (--client-cert-auth). */
  etcdTls?: boolean;
  /**
   * etcd auth enabled with root and this user, whose role covers the etcd prefix. Agents and the
   * CLI get --etcd-username and --etcd-password-file (written to the work dir, mode 0600).
   */
  etcdAuth?: { user: string; password: string };
  /** The prefix the auth user's role covers; /coreos.com/network by default. */
  etcdPrefix?: string;
  /** Directory for etcd data, subnet files and logs; a fresh temp dir by default. */
  workDir?: string;
  /** Keep workDir at teardown (also settable later, on the instance). */
  keepWorkDir?: boolean;
  /** The `weft` executable (a node script); <repo>/bin/weft by default. */
  weftBin?: string;
  /** How long an agent or etcd gets after SIGTERM before SIGKILL. */
  graceMs?: number;
  /** The underlay's address families; 'ipv4' by default. With 'ipv6', etcd is reached over IPv6. */
  stack?: UnderlayStack;
}

export interface Host {
  index: number;
  name: string;
  ns: string;
  /** The underlay address: IPv4, or IPv6 on an 'ipv6' testbed. */
  ip: string;
  /** The IPv4 underlay address ('ipv4' and 'dual' testbeds). */
  ip4?: string;
  /** The IPv6 underlay address ('dual' and 'ipv6' testbeds). */
  ip6?: string;
  segment: number;
  dir: string;
  subnetFile: string;
  agent?: RunningProcess;
  containers: Container[];
}

export interface Container {
  name: string;
  ns: string;
  /** The IPv4 address, or the IPv6 one when the subnet.env has no IPv4. */
  ip: string;
  /** The IPv6 address, when the subnet.env has FLANNEL_IPV6_SUBNET. */
  ip6?: string;
  host: Host;
}

/** Anything a command can run in: a host, a container, or a namespace name. */
export type Place = Host | Container | string;
const nsOf = (p: Place): string => (typeof p === 'string' ? p : p.ns);

export class Testbed {
  readonly runId: string;
  readonly underlay: string;
  /** The first member's client URL (the only one unless etcdMembers is 3). */
  readonly etcdEndpoint: string;
  /** Every member's client URL, in member order. */
  readonly etcdEndpoints: string[];
  readonly workDir: string;
  readonly stack: UnderlayStack;
  readonly hosts = new Map<number, Host>();
  /** The password file agents and the CLI read on an auth testbed (mode 0600). */
  readonly etcdPasswordFile?: string;
  readonly etcdUser?: string;
  private readonly etcd: EtcdInNetns;
  private readonly pings = new Set<ChildProcess>();
  private readonly namespaces: string[] = [];
  /** Container namespaces made by prepareContainer and not yet wired by addContainer. */
  private readonly sandboxes = new Set<string>();
  private readonly segmentsUp = new Set<number>();
  private readonly weftBin: string;
  private readonly graceMs: number;
  private teardownDone?: Promise<void>;
  /** Keep workDir at teardown; the demo sets it after a failure so the logs stay readable. */
  keepWorkDir: boolean;

  private constructor(opts: TestbedOptions) {
    this.runId = opts.runId ?? newRunId();
    this.underlay = nsName(this.runId, 'ul');
    if (opts.workDir) {
      this.workDir = opts.workDir; // emptied in create(), once no stale process can write to it
    } else {
      this.workDir = mkdtempSync(join(tmpdir(), `weft-testbed-${this.runId}-`));
    }
    this.stack = opts.stack ?? 'ipv4';
    if (!['ipv4', 'dual', 'ipv6'].includes(this.stack)) throw new Error(`stack must be ipv4, dual or ipv6, got ${String(this.stack)}`);
    // Without IPv4 on the underlay, hosts reach etcd over IPv6.
    const etcdHost = this.stack === 'ipv6' ? `[${UNDERLAY_IP6}]` : UNDERLAY_IP;
    this.graceMs = opts.graceMs ?? 5000;
    this.etcd = new EtcdInNetns({
      runId: this.runId,
      underlay: this.underlay,
      workDir: this.workDir,
      etcdHost,
      graceMs: this.graceMs,
      ...(opts.etcdClientPort !== undefined ? { etcdClientPort: opts.etcdClientPort } : {}),
      ...(opts.etcdMembers !== undefined ? { etcdMembers: opts.etcdMembers } : {}),
      ...(opts.etcdTls !== undefined ? { etcdTls: opts.etcdTls } : {}),
      ...(opts.etcdAuth !== undefined ? { etcdAuth: opts.etcdAuth } : {}),
      ...(opts.etcdPrefix !== undefined ? { etcdPrefix: opts.etcdPrefix } : {}),
    });
    this.etcdEndpoints = this.etcd.etcdEndpoints;
    this.etcdEndpoint = this.etcd.etcdEndpoint;
    if (this.etcd.etcdUser !== undefined) this.etcdUser = this.etcd.etcdUser;
    if (this.etcd.etcdPasswordFile !== undefined) this.etcdPasswordFile = this.etcd.etcdPasswordFile;
    this.weftBin = opts.weftBin ?? WEFT_BIN;
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
      if (tb.stack !== 'ipv4') await setSysctls(tb.underlay, ipv6Sysctls({ forwarding: true }));
      await tb.ensureSegment(0);
      await tb.etcd.start();
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
    const prefix6 = SEGMENTS6[segment];
    if (prefix === undefined || prefix6 === undefined) throw new Error(`no underlay segment ${segment} (0..${SEGMENTS.length - 1})`);
    const br = `br${segment}`;
    // IPv6 neighbour discovery is multicast; without an MLD querier on the segment, snooping
    // would decide on its own which ports hear it.
    const lines = [this.stack === 'ipv4' ? `link add ${br} type bridge` : `link add ${br} type bridge mcast_snooping 0`];
    if (this.stack !== 'ipv6') lines.push(`addr add ${prefix}.254/24 dev ${br}`);
    if (this.stack !== 'ipv4') lines.push(`addr add ${prefix6}::254/64 dev ${br} nodad`);
    lines.push(`link set ${br} up`);
    await ipBatch(this.underlay, lines);
    this.segmentsUp.add(segment);
  }

  // --- etcd -------------------------------------------------------------------------------

  /** The throwaway PKI of a TLS testbed (CA, server and client certificates in workDir/pki). */
  get pki(): Pki | undefined {
    return this.etcd.pki;
  }

  /** Stops every etcd member (SIGTERM) keeping its data, as an outage; startEtcdAgain() brings them back. */
  async stopEtcd(): Promise<void> {
    return this.etcd.cluster.stop();
  }

  /** Restarts every etcd member on the same data dirs and addresses after stopEtcd(). */
  async startEtcdAgain(): Promise<void> {
    const cluster = this.etcd.cluster;
    if (cluster.members.some((m) => m.running)) throw new Error('etcd is still running');
    return cluster.reviveAll();
  }

  /** Freezes etcd (SIGSTOP): connections stay open but nothing answers, a black hole. */
  pauseEtcd(): void {
    this.etcd.cluster.pause();
  }

  resumeEtcd(): void {
    this.etcd.cluster.resume();
  }

  /** Kills one member (SIGKILL by default) and waits until it has exited; its data dir stays. */
  async killEtcdMember(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.etcd.cluster.kill(i, signal);
  }

  /** Starts a killed member again on its data dir, so it rejoins; waits until it serves. */
  async startEtcdMember(i: number): Promise<void> {
    return this.etcd.cluster.startMember(i);
  }

  /**
   * The index of the member that every running member names as leader, from `etcdctl endpoint
   * status -w json`; waits (up to timeoutMs) through an election.
   */
  async etcdLeader(timeoutMs = 15_000): Promise<number> {
    return this.etcd.cluster.leader({ timeoutMs });
  }

  get etcdPid(): number | undefined {
    return this.etcd.cluster.members[0]!.pid;
  }

  /** Process id of member i while it runs. */
  etcdMemberPid(i: number): number | undefined {
    const m = this.etcdMember(i);
    return m.running ? m.pid : undefined;
  }

  /** Everything member i has logged (all its starts). */
  etcdLog(i = 0): string {
    return this.etcdMember(i).logs();
  }

  private etcdMember(i: number): EtcdMember {
    const m = this.etcd.cluster.members[i];
    if (!m) throw new Error(`no etcd member ${i} (0..${this.etcdEndpoints.length - 1})`);
    return m;
  }

  /**
   * Connection flags for `weft` and `weft agent`: all endpoints, and on a TLS or auth testbed
   * the CA, client certificate and key, username and password file.
   */
  etcdFlags(opts: EtcdFlagOptions = {}): string[] {
    return this.etcd.etcdFlags(opts);
  }

  /**
   * Runs etcdctl against the testbed's etcd (every member unless endpoints are given), from the
   * underlay or from another namespace.
   */
  async etcdctl(args: string[], opts: { from?: Place; input?: string; endpoints?: string[] } = {}): Promise<RunResult> {
    const { from, ...rest } = opts;
    return this.etcd.cluster.etcdctl(args, from === undefined ? rest : { ...rest, from: nsOf(from) });
  }

  /**
   * A running `etcdctl watch --prefix PREFIX` from the underlay over every member (it resumes
   * on another member when its own dies); stopped at teardown at the latest.
   */
  watchPrefix(prefix: string): WatchHandle {
    return this.etcd.cluster.watchPrefix(prefix);
  }

  /**
   * Runs the weft CLI (`weft ARGS... <etcdFlags()>`), from the underlay by default.
   * endpoints: false leaves the connection flags out; etcdFlags replaces them.
   */
  async weft(
    args: string[],
    opts: { from?: Place; endpoints?: boolean; etcdFlags?: string[]; env?: Record<string, string>; input?: string } = {},
  ): Promise<RunResult> {
    const ns = opts.from === undefined ? this.underlay : nsOf(opts.from);
    const conn = opts.endpoints === false ? [] : (opts.etcdFlags ?? this.etcdFlags());
    return runIn(ns, process.execPath, [this.weftBin, ...args, ...conn], {
      ...(opts.env ? { env: opts.env } : {}),
      ...(opts.input !== undefined ? { input: opts.input } : {}),
    });
  }

  // --- hosts ------------------------------------------------------------------------------

  /**
   * Creates host namespace hN with eth0 = <segment>.N/24 and/or <segment6>::N/64 (by the
   * testbed's stack) on the underlay, forwarding on.
   */
  async addHost(index: number, opts: { segment?: number } = {}): Promise<Host> {
    if (!Number.isInteger(index) || index < 1 || index > 253) throw new Error(`host index must be 1..253, got ${index}`);
    if (this.hosts.has(index)) throw new Error(`host ${index} exists`);
    const segment = opts.segment ?? 0;
    await this.ensureSegment(segment);
    const name = `h${index}`;
    const ns = nsName(this.runId, name);
    const ip4 = this.stack === 'ipv6' ? undefined : `${SEGMENTS[segment]}.${index}`;
    const ip6 = this.stack === 'ipv4' ? undefined : `${SEGMENTS6[segment]}::${index}`;
    const dir = join(this.workDir, name);
    mkdirSync(dir, { recursive: true });
    const host: Host = {
      index,
      name,
      ns,
      ip: (ip4 ?? ip6)!,
      ...(ip4 ? { ip4 } : {}),
      ...(ip6 ? { ip6 } : {}),
      segment,
      dir,
      subnetFile: join(dir, 'subnet.env'),
      containers: [],
    };
    this.hosts.set(index, host);
    await this.addNamespace(ns);
    // Before any link exists, so that eth0 is made with these defaults.
    if (ip6) await setSysctls(ns, ipv6Sysctls({ forwarding: true }));
    await ipBatch(this.underlay, vethLines(`v-${name}`, ns, 'eth0', { master: `br${segment}` }));
    // The default route lets an agent without --iface find its uplink, as on a real host;
    // it leads only into the underlay namespace, which has no way out.
    const lines: string[] = [];
    if (ip4) lines.push(`addr add ${ip4}/24 dev eth0`);
    if (ip6) lines.push(`addr add ${ip6}/64 dev eth0 nodad`);
    lines.push('link set eth0 up');
    if (ip4) lines.push(`route add default via ${SEGMENTS[segment]}.254`);
    if (ip6) lines.push(`route add default via ${SEGMENTS6[segment]}::254`);
    await ipBatch(ns, lines);
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
   * The etcd connection flags are etcdFlags() unless opts.etcdFlags replaces them.
   */
  startAgent(
    host: Host,
    extraArgs: string[] = [],
    opts: { iface?: string | false; env?: Record<string, string>; etcdFlags?: string[] } = {},
  ): RunningProcess {
    if (host.agent && !host.agent.status) throw new Error(`agent on ${host.name} is running (pid ${host.agent.pid})`);
    const iface = opts.iface === false ? [] : ['--iface', opts.iface ?? 'eth0'];
    const args = [
      ...nodeFlagsOf(this.weftBin),
      this.weftBin,
      'agent',
      ...(opts.etcdFlags ?? this.etcdFlags()),
      ...iface,
      '--subnet-file', host.subnetFile,
      '--node-name', host.name,
      ...extraArgs,
    ];
    host.agent = spawnIn(host.ns, process.execPath, args, join(host.dir, 'agent.log'), agentEnvOf(this.weftBin, opts.env), { inherit: false });
    return host.agent;
  }

  /**
   * Starts another overlay daemon (a real flanneld, for `make interop`) as the host's agent,
   * logging to <workDir>/hN/<logName>: stopped by stopAgent and at teardown like weft's.
   */
  startForeignAgent(host: Host, cmd: string, args: string[], logName: string): RunningProcess {
    if (host.agent && !host.agent.status) throw new Error(`agent on ${host.name} is running (pid ${host.agent.pid})`);
    host.agent = spawnIn(host.ns, cmd, args, join(host.dir, logName));
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

  /** The host's subnet.env, parsed (it must have IPv4); undefined while the file does not exist. */
  readSubnetEnv(host: Host): SubnetEnvFile | undefined {
    const text = readIfExists(host.subnetFile);
    return text === undefined ? undefined : parseSubnetEnv(text);
  }

  /** The host's subnet.env of any stack (IPv4, IPv6 or both); undefined while the file does not exist. */
  readAnySubnetEnv(host: Host): SubnetEnv | undefined {
    const text = readIfExists(host.subnetFile);
    return text === undefined ? undefined : parseAnySubnetEnv(text);
  }

  /** Waits for subnet.env to appear; fails at once with the log tail if the agent exits. */
  async waitForSubnetEnv(host: Host, timeoutMs = 20_000): Promise<SubnetEnvFile> {
    return this.waitForFile(host, () => this.readSubnetEnv(host), timeoutMs);
  }

  /** waitForSubnetEnv for a subnet.env of any stack. */
  async waitForAnySubnetEnv(host: Host, timeoutMs = 20_000): Promise<SubnetEnv> {
    return this.waitForFile(host, () => this.readAnySubnetEnv(host), timeoutMs);
  }

  private async waitForFile<T>(host: Host, read: () => T | undefined, timeoutMs: number): Promise<T> {
    return poll(
      () => {
        const agent = host.agent;
        if (agent?.status) {
          throw new PollAbort(new Error(`agent on ${host.name} exited (${fmtExit(agent.status)}):\n${tail(agent.logPath)}`));
        }
        return read();
      },
      // Read every 10 ms (a small file, no process): whatever waits for it (the demo's new
      // container, as a CNI plugin would be run) should not wait on the harness.
      { timeoutMs, intervalMs: 10, what: `${host.subnetFile}` },
    );
  }

  /**
   * GETs a URL from inside a namespace (e.g. the agent's healthz on 127.0.0.1). Runs node there,
   * since a fresh machine need not have curl. Returns the status, or 0 when nothing answered.
   */
  async httpGet(from: Place, url: string): Promise<{ status: number; body: string }> {
    return traffic.httpGet(nsOf(from), url);
  }

  // --- containers -------------------------------------------------------------------------

  /**
   * Creates container namespace cN (or cN-S for slot S > 1) attached to the host's bridge
   * cni0, as Docker --bip or the flannel CNI bridge plugin would: cni0 gets FLANNEL_SUBNET and
   * FLANNEL_MTU, the container gets address subnet+1+slot and a default route via cni0; the
   * same for FLANNEL_IPV6_SUBNET when the subnet.env has it (and only that when it has no
   * IPv4). The subnet comes from the host's subnet.env unless given.
   */
  /**
   * A container's namespace made ahead of its network, as a container runtime makes a pod's
   * sandbox before the CNI plugin runs: addContainer then only wires and addresses it. (IPv6
   * is switched on in it whatever the network turns out to be; unused, that changes nothing.)
   */
  async prepareContainer(host: Host, slot = 1): Promise<void> {
    const { name, ns } = this.containerNames(host, slot);
    if (this.sandboxes.has(ns) || host.containers.some((c) => c.name === name)) throw new Error(`container ${name} exists`);
    await this.addNamespace(ns);
    await setSysctls(ns, ipv6Sysctls({ forwarding: false }));
    this.sandboxes.add(ns);
  }

  private containerNames(host: Host, slot: number): { name: string; ns: string } {
    if (!Number.isInteger(slot) || slot < 1) throw new Error(`slot ${slot} is not a positive integer`);
    const name = slot === 1 ? `c${host.index}` : `c${host.index}-${slot}`;
    return { name, ns: nsName(this.runId, name) };
  }

  async addContainer(host: Host, opts: { env?: SubnetEnv; slot?: number } = {}): Promise<Container> {
    const env = opts.env ?? this.readAnySubnetEnv(host);
    if (!env) throw new Error(`${host.name} has no subnet.env yet (${host.subnetFile})`);
    const slot = opts.slot ?? 1;
    const { name, ns } = this.containerNames(host, slot);
    const v4 = env.ipv4;
    const v6 = env.ipv6;
    const ip4 = v4?.subnet.network.add(1 + slot);
    const ip6 = v6?.subnet.network.add(1 + slot);
    if (v4 && ip4 && (!v4.subnet.contains(ip4) || ip4.value === v4.subnet.last)) throw new Error(`slot ${slot} does not fit in ${v4.subnet}`);
    if (v6 && ip6 && !v6.subnet.contains(ip6)) throw new Error(`slot ${slot} does not fit in ${v6.subnet}`);
    if (host.containers.some((c) => c.name === name)) throw new Error(`container ${name} exists`);
    if (!this.sandboxes.delete(ns)) {
      await this.addNamespace(ns);
      if (v6) await setSysctls(ns, ipv6Sysctls({ forwarding: false }));
    }
    const lines: string[] = [];
    if (host.containers.length === 0) {
      if (v6 && this.stack === 'ipv4') await setSysctls(host.ns, ipv6Sysctls({ forwarding: true }));
      lines.push('link add cni0 type bridge');
      if (v4) lines.push(`addr add ${v4.bridgeIp}/${v4.subnet.prefix} dev cni0`);
      if (v6) lines.push(`addr add ${v6.bridgeIp}/${v6.subnet.prefix} dev cni0 nodad`);
      lines.push(`link set cni0 mtu ${env.mtu} up`);
    }
    lines.push(...vethLines(`v-${name}`, ns, 'eth0', { master: 'cni0', mtu: env.mtu }));
    await ipBatch(host.ns, lines);
    const inside: string[] = [];
    if (v4) inside.push(`addr add ${ip4}/${v4.subnet.prefix} dev eth0`);
    if (v6) inside.push(`addr add ${ip6}/${v6.subnet.prefix} dev eth0 nodad`);
    inside.push('link set eth0 up');
    if (v4) inside.push(`route add default via ${v4.bridgeIp}`);
    if (v6) inside.push(`route add default via ${v6.bridgeIp}`);
    await ipBatch(ns, inside);
    const c: Container = { name, ns, ip: (ip4 ?? ip6)!.toString(), ...(ip6 ? { ip6: ip6.toString() } : {}), host };
    host.containers.push(c);
    return c;
  }

  // --- traffic ----------------------------------------------------------------------------

  /** Pings and parses the summary. Never throws for unreachable targets: look at received. */
  async ping(from: Place, to: string, opts: PingOptions = {}): Promise<PingResult> {
    return traffic.ping(nsOf(from), to, opts);
  }

  /** ping's IPv6 twin: pings an IPv6 address and parses the summary; never throws for unreachable targets. */
  async ping6(from: Place, to: string, opts: PingOptions = {}): Promise<PingResult> {
    return traffic.ping6(nsOf(from), to, opts);
  }

  /** Pings an address of either family (ping or ping6). */
  async pingAny(from: Place, to: string, opts: PingOptions = {}): Promise<PingResult> {
    return traffic.pingAny(nsOf(from), to, opts);
  }

  /** Polls single pings (IPv4 or IPv6) until one is answered; returns how long that took, in ms. */
  async waitReachable(from: Place, to: string, timeoutMs = 10_000): Promise<number> {
    return traffic.waitReachable(nsOf(from), typeof from === 'string' ? from : from.name, to, timeoutMs);
  }

  /** The time (epoch ms) of the first answer to pings every 10 ms from `from` to `to` (traffic.firstAnswer). */
  firstAnswer(from: Place, to: string, timeoutMs = 10_000): Promise<number> {
    return traffic.firstAnswer(nsOf(from), to, timeoutMs, this.pings);
  }

  /**
   * A ping (IPv4 or IPv6) left running (every intervalMs, 1 s reply timeout) until stop().
   * Its lines are timestamped (-D), so stop() dates each lost request (lostPings).
   */
  startPing(from: Place, to: string, intervalMs = 50): PingHandle {
    return traffic.startPing(nsOf(from), to, intervalMs, this.pings);
  }

  // --- lifecycle --------------------------------------------------------------------------


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
    this.etcd.killWatches();
    await Promise.all([...this.hosts.values()].map((h) => attempt(() => this.stopAgent(h))));
    await attempt(() => this.etcd.stop());
    await attempt(() => removeLeftovers(nsPrefix(this.runId)));
    if (!this.keepWorkDir) await attempt(async () => rmSync(this.workDir, { recursive: true, force: true }));
    if (errors.length) throw new AggregateError(errors, `testbed ${this.runId} teardown: ${errors.map(String).join('; ')}`);
  }
}

export { tail } from './process.js';
export type { PingHandle, PingOptions } from './traffic.js';
export type { WatchHandle } from './etcd-cluster.js';
export type { EtcdFlagOptions } from './etcd-in-netns.js';
export type { ExitStatus, RunningProcess } from './process.js';
