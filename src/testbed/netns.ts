// Network namespaces, veth pairs and bridges for the multi-host testbed.
//
// Namespace names are global on the machine, so every name is `weft-<runId>-<role>`: two test
// files, or a run killed half-way, never collide. Links are created directly inside their
// namespaces (`ip -n NS link add X type veth peer name eth0 netns OTHER`), so their names are
// local to a namespace and cannot clash with another run's links or with the root namespace.
//
// This is test tooling, not the product: it runs iproute2 itself instead of going through
// src/dataplane/ipcmd.ts, but the same rules hold (argument arrays, batches per namespace).
import { execa } from 'execa';

const RUN_ID = /^[a-z0-9]{1,12}$/;
const ROLE = /^[a-z0-9-]{1,16}$/;
export const NETNS_PREFIX = 'weft-';

export class NetnsError extends Error {
  override readonly name = 'NetnsError';
  constructor(
    message: string,
    readonly command: string[],
    readonly stderr: string,
  ) {
    super(`${message}: ${stderr.trim().split('\n').slice(0, 5).join('; ')}`);
  }
}

/**
 * A fresh short run id: "t", the process id and some randomness, base 36. The leading "t"
 * keeps it apart from fixed ids such as the demo's ("demo").
 */
export function newRunId(): string {
  const rand = Math.floor(Math.random() * 36 ** 3).toString(36).padStart(3, '0');
  return `t${(process.pid % 36 ** 4).toString(36)}${rand}`;
}

export function assertRunId(id: string): string {
  if (!RUN_ID.test(id)) throw new Error(`run id must match ${RUN_ID}, got ${JSON.stringify(id)}`);
  return id;
}

export function nsPrefix(runId: string): string {
  return `${NETNS_PREFIX}${assertRunId(runId)}-`;
}

export function nsName(runId: string, role: string): string {
  if (!ROLE.test(role)) throw new Error(`bad namespace role ${JSON.stringify(role)}`);
  return `${nsPrefix(runId)}${role}`;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function exec(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await execa(cmd, args, { reject: false, input: input ?? '' });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr ?? r.message) };
}

async function mustExec(cmd: string, args: string[], input?: string): Promise<RunResult> {
  const r = await exec(cmd, args, input);
  if (r.exitCode !== 0) throw new NetnsError(`${cmd} ${args.join(' ')} failed (exit ${r.exitCode})`, [cmd, ...args], r.stderr);
  return r;
}

/** Runs `ip -n NS -batch -` with one ip command (without the leading `ip`) per line. */
export async function ipBatch(ns: string, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  for (const line of lines) if (/[\n\r]/.test(line)) throw new Error(`batch line with a newline: ${JSON.stringify(line)}`);
  await mustExec('ip', ['-n', ns, '-batch', '-'], lines.join('\n') + '\n');
}

/** Runs `ip -n NS ARGS...`. */
export async function ipIn(ns: string, args: string[]): Promise<RunResult> {
  return mustExec('ip', ['-n', ns, ...args]);
}

/** Runs a command inside a namespace (`ip netns exec NS CMD ARGS...`); never throws on exit status. */
export async function execIn(ns: string, cmd: string, args: string[], opts: { input?: string } = {}): Promise<RunResult> {
  return exec('ip', ['netns', 'exec', ns, cmd, ...args], opts.input);
}

export async function listNetns(): Promise<string[]> {
  const r = await mustExec('ip', ['-json', 'netns', 'list']);
  const text = r.stdout.trim();
  if (!text) return [];
  const parsed: unknown = JSON.parse(text);
  if (!Array.isArray(parsed)) return [];
  return parsed.flatMap((e: unknown) =>
    e && typeof e === 'object' && typeof (e as { name?: unknown }).name === 'string' ? [(e as { name: string }).name] : [],
  );
}

/** Process ids living in a namespace (`ip netns pids`). */
export async function netnsPids(ns: string): Promise<number[]> {
  const r = await exec('ip', ['netns', 'pids', ns]);
  if (r.exitCode !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number);
}

/**
 * Deletes a namespace and kills whatever still runs in it (these are processes the testbed
 * started: etcd, agents, pings). A namespace outlives its name while a process holds it, so
 * killing first is what actually frees the veths and sockets.
 */
export async function deleteNetns(ns: string): Promise<void> {
  for (const pid of await netnsPids(ns)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const r = await exec('ip', ['netns', 'del', ns]);
  if (r.exitCode !== 0 && (await listNetns()).includes(ns)) {
    throw new NetnsError(`ip netns del ${ns} failed`, ['ip', 'netns', 'del', ns], r.stderr);
  }
}

/** Creates a namespace with lo up. A stale namespace of the same name (a killed run) is removed first. */
export async function createNetns(ns: string): Promise<void> {
  if ((await listNetns()).includes(ns)) await deleteNetns(ns);
  await mustExec('ip', ['netns', 'add', ns]);
  await ipIn(ns, ['link', 'set', 'lo', 'up']);
}

/**
 * Removes every namespace whose name starts with prefix (and the processes in it). Children
 * first: containers and hosts hold veths into the underlay, though the kernel copes either way.
 * Returns the names removed.
 */
export async function removeLeftovers(prefix: string): Promise<string[]> {
  if (!prefix.startsWith(NETNS_PREFIX) || prefix.length <= NETNS_PREFIX.length) {
    throw new Error(`refusing to remove namespaces by the prefix ${JSON.stringify(prefix)}`);
  }
  const names = (await listNetns()).filter((n) => n.startsWith(prefix));
  const rank = (n: string) => (n.endsWith('-ul') ? 1 : 0);
  names.sort((a, b) => rank(a) - rank(b));
  for (const n of names) await deleteNetns(n);
  return names;
}

/** Writes a sysctl inside a namespace (/proc/sys/net is per namespace); no procps needed. */
export async function setSysctl(ns: string, key: string, value: string): Promise<void> {
  if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`bad sysctl key ${key}`);
  const path = `/proc/sys/${key.replace(/\./g, '/')}`;
  const r = await execIn(ns, 'tee', [path], { input: value });
  if (r.exitCode !== 0) throw new NetnsError(`setting ${key}=${value} in ${ns} failed`, ['tee', path], r.stderr);
}

/**
 * Writes several sysctls inside a namespace, in one process per distinct value (`tee` writes
 * its input to every file it is given), in the order first seen.
 */
export async function setSysctls(ns: string, values: Record<string, string>): Promise<void> {
  const byValue = new Map<string, string[]>();
  for (const [key, value] of Object.entries(values)) {
    if (!/^[a-z0-9_.]+$/.test(key)) throw new Error(`bad sysctl key ${key}`);
    if (!/^[0-9]{1,10}$/.test(value)) throw new Error(`bad sysctl value ${JSON.stringify(value)} for ${key}`);
    byValue.set(value, [...(byValue.get(value) ?? []), `/proc/sys/${key.replace(/\./g, '/')}`]);
  }
  for (const [value, paths] of byValue) {
    const r = await execIn(ns, 'tee', paths, { input: value });
    if (r.exitCode !== 0) throw new NetnsError(`setting ${paths.join(', ')} to ${value} in ${ns} failed`, ['tee', ...paths], r.stderr);
  }
}

/**
 * IPv6 on in a namespace, for links made afterwards too, without duplicate address detection
 * (the testbed's addresses are unique by construction and must be usable at once), and with
 * forwarding when the namespace routes (a host, the underlay).
 */
export function ipv6Sysctls(opts: { forwarding: boolean }): Record<string, string> {
  return {
    'net.ipv6.conf.all.disable_ipv6': '0',
    'net.ipv6.conf.default.disable_ipv6': '0',
    'net.ipv6.conf.all.accept_dad': '0',
    'net.ipv6.conf.default.accept_dad': '0',
    ...(opts.forwarding ? { 'net.ipv6.conf.all.forwarding': '1' } : {}),
  };
}

/**
 * Lines for a veth pair from namespace `ns` (end `local`) into namespace `peerNs` (end
 * `peer`), both up, with optional bridge and MTU on the local end. Run with ipBatch(ns, ...).
 */
export function vethLines(local: string, peerNs: string, peer: string, opts: { master?: string; mtu?: number } = {}): string[] {
  for (const n of [local, peer]) if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(n)) throw new Error(`bad link name ${n}`);
  const mtu = opts.mtu !== undefined ? ['mtu', String(opts.mtu)] : [];
  const master = opts.master ? ['master', opts.master] : [];
  return [
    ['link', 'add', local, ...mtu, 'type', 'veth', 'peer', 'name', peer, ...mtu, 'netns', peerNs].join(' '),
    ['link', 'set', local, ...master, 'up'].join(' '),
  ];
}
