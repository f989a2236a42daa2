// Shared pieces of the multi-host tests: networks applied through the real CLI, kernel
// state read back from a host namespace, and an etcd watch stream for "never missing" checks.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { execIn, ipIn } from '../../src/testbed/netns.js';
import { REPO_ROOT } from '../../src/testbed/paths.js';
import { Testbed, type Host, type TestbedOptions } from '../../src/testbed/topology.js';

/**
 * One testbed for the enclosing file or describe block: created (with `options`) before its
 * tests, `setup` run on it (a Network applied, hosts joined), and torn down after them, whether
 * they passed or not. `use` receives it as soon as it exists, so the file's `let tb` is set (and
 * usable in `setup`) even if `setup` fails.
 */
export function testbedFor(use: (tb: Testbed) => void, opts: { options?: TestbedOptions; setup?: (tb: Testbed) => Promise<unknown> } = {}): void {
  let tb: Testbed | undefined;
  beforeAll(async () => {
    tb = await Testbed.create(opts.options);
    use(tb);
    await opts.setup?.(tb);
  });
  afterAll(async () => {
    await tb?.teardown();
  });
}

export const withNetwork = (yaml: string) => (tb: Testbed) => applyYaml(tb, 'network', yaml);

export async function applyYaml(tb: Testbed, name: string, yaml: string): Promise<string> {
  const file = join(tb.workDir, `${name}.yaml`);
  writeFileSync(file, yaml);
  const r = await tb.weft(['apply', '-f', file]);
  expect(r.exitCode, `weft apply failed: ${r.stderr}`).toBe(0);
  return r.stdout;
}

export function networkYaml(opts: { backend?: string; leaseTTL?: string; cidr?: string; extraBackend?: string } = {}): string {
  return `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: default
spec:
  cidr: ${opts.cidr ?? '10.5.0.0/16'}
  subnetLength: 24
  backend:
    type: ${opts.backend ?? 'vxlan'}
${opts.extraBackend ?? ''}${opts.leaseTTL ? `  leaseTTL: ${opts.leaseTTL}\n` : ''}`;
}

export interface KernelState {
  routes: string[];
  neighbours: string[];
  fdb: string[];
}

/** Routes, permanent neighbours and FDB entries on a device, as sorted comparable strings. */
export async function kernelState(host: Host, dev = 'flannel.1'): Promise<KernelState> {
  const json = async (cmd: string, args: string[]) => {
    const r = await execIn(host.ns, cmd, ['-json', ...args]);
    return r.exitCode === 0 && r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>[]) : [];
  };
  const routes = (await json('ip', ['route', 'show', 'dev', dev])).map((r) => `${r.dst} via ${r.gateway ?? '-'}`);
  const neighbours = (await json('ip', ['neigh', 'show', 'dev', dev]))
    .filter((n) => Array.isArray(n.state) && (n.state as string[]).includes('PERMANENT'))
    .map((n) => `${n.dst} ${n.lladdr}`);
  const fdb = (await json('bridge', ['fdb', 'show', 'dev', dev]))
    .filter((f) => f.dst && f.mac !== '00:00:00:00:00:00')
    .map((f) => `${f.mac} ${f.dst}`);
  return { routes: routes.sort(), neighbours: neighbours.sort(), fdb: fdb.sort() };
}

export async function linkMac(host: Host, dev: string): Promise<string | undefined> {
  const r = await ipIn(host.ns, ['-json', 'link', 'show', dev]);
  if (r.exitCode !== 0) return undefined;
  return (JSON.parse(r.stdout) as { address?: string }[])[0]?.address;
}

/** The value and attached etcd lease of a key, read with etcdctl from the underlay. */
export async function etcdKey(tb: Testbed, key: string): Promise<{ value: string; lease: number } | undefined> {
  const r = await tb.etcdctl(['get', key, '-w', 'json']);
  expect(r.exitCode, r.stderr).toBe(0);
  const kvs = (JSON.parse(r.stdout) as { kvs?: { value: string; lease?: number }[] }).kvs;
  if (!kvs?.length) return undefined;
  return { value: Buffer.from(kvs[0]!.value, 'base64').toString(), lease: kvs[0]!.lease ?? 0 };
}

export async function subnetKeys(tb: Testbed, prefix = '/coreos.com/network'): Promise<string[]> {
  const r = await tb.etcdctl(['get', '--prefix', '--keys-only', `${prefix}/subnets/`]);
  return r.stdout.split('\n').filter(Boolean).map((k) => k.slice(`${prefix}/subnets/`.length)).sort();
}

/** Waits until every container answers pings from every other; returns the slowest wait (ms). */
export async function expectFullMesh(tb: Testbed, timeoutMs = 15_000): Promise<number> {
  const containers = [...tb.hosts.values()].flatMap((h) => h.containers);
  let slowest = 0;
  for (const from of containers) {
    for (const to of containers) {
      if (from === to) continue;
      slowest = Math.max(slowest, await tb.waitReachable(from, to.ip, timeoutMs));
    }
  }
  return slowest;
}

/** Starts an agent on a new host, waits for its subnet.env, and gives it a container. */
export async function joinHost(tb: Testbed, index: number, agentArgs: string[] = [], opts: { segment?: number } = {}) {
  const host = await tb.addHost(index, opts);
  tb.startAgent(host, agentArgs);
  await tb.waitForSubnetEnv(host);
  const container = await tb.addContainer(host);
  return { host, container };
}

/** The agent's log split per start: runs[0] is the first process's output. */
export function agentRuns(tb: Testbed, host: Host): string[] {
  return tb.agentLog(host).split(/^.*starting weft agent.*$/m).slice(1);
}

/** The part of an agent's log written since its last start. */
export function currentRunLog(tb: Testbed, host: Host): string {
  return agentRuns(tb, host).pop() ?? '';
}

/** One line of an agent's JSON log. */
export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  time: string;
  msg: string;
  component?: string;
  [field: string]: unknown;
}

/** The JSON lines of an agent's log (anything else, e.g. a crash trace, is left out). */
export function logEntries(text: string): LogEntry[] {
  const out: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch {
      // a line cut short by a kill; not an event
    }
  }
  return out;
}

/** Log entries with this message (exact, or matching a pattern) whose fields have these values. */
export function findLogs(text: string, msg: string | RegExp, fields: Partial<LogEntry> = {}): LogEntry[] {
  return logEntries(text).filter(
    (e) => (typeof msg === 'string' ? e.msg === msg : msg.test(e.msg)) && Object.entries(fields).every(([k, v]) => e[k] === v),
  );
}

/** Restarts nothing itself: waits until run number `run` (0-based) has logged the message. */
export async function waitForRun(tb: Testbed, host: Host, run: number, msg: string | RegExp, timeoutMs = 15_000): Promise<string> {
  const { poll } = await import('../../src/testbed/poll.js');
  return poll(() => {
    const log = agentRuns(tb, host)[run];
    return log !== undefined && findLogs(log, msg).length > 0 ? log : undefined;
  }, { timeoutMs, what: `${host.name} agent run ${run + 1} to log ${msg}` });
}

/**
 * Writes (or deletes) fake peer leases from..to-1 in the 10.100.0.0/14 part of a /8 network,
 * from one process with every request in flight at once: a burst as a busy etcd delivers it.
 * Peer i's subnet is 10.(100 + i/256).(i%256).0/24, its PublicIP 198.18.(i/256).(i%256).
 */
export async function peerLeaseBurst(tb: Testbed, action: 'put' | 'delete', from: number, to: number): Promise<void> {
  const script = `
    const { Etcd3 } = await import(${JSON.stringify(join(REPO_ROOT, 'node_modules', 'etcd3', 'lib', 'index.js'))});
    const c = new Etcd3({ hosts: process.argv[1] });
    const ops = [];
    for (let i = ${from}; i < ${to}; i++) {
      const k = '/coreos.com/network/subnets/10.' + (100 + (i >> 8)) + '.' + (i & 255) + '.0-24';
      const mac = '02:b0:00:00:' + (i >> 8).toString(16).padStart(2, '0') + ':' + (i & 255).toString(16).padStart(2, '0');
      const v = '{"PublicIP":"198.18.' + (i >> 8) + '.' + (i & 255) + '","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"' + mac + '"}}';
      ops.push(${action === 'put' ? 'c.put(k).value(v)' : 'c.delete().key(k)'});
    }
    await Promise.all(ops);
    c.close();
  `;
  const r = await execIn(tb.underlay, process.execPath, ['--input-type=module', '-e', script, tb.etcdEndpoint]);
  expect(r.exitCode, r.stderr).toBe(0);
}
