// --ip-masq with real agents. "The world" is a namespace on another underlay segment
// (198.51.100.9) with no route back to the overlay: a container reaches it only when its host
// masquerades, and a TCP server there reports the source address it sees. The tests then
// break the rules by hand (the agent puts them back at its next resync), move the host to
// another subnet and network (the chain follows), and restart it without --ip-masq (the rules
// go away).
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { masqChainRules, MASQ_CHAIN } from '../../src/dataplane/masq.js';
import { execIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Container, Host } from '../../src/testbed/topology.js';
import type { Testbed } from '../../src/testbed/topology.js';
import { joinHost, networkYaml, testbedFor, waitForRun, withNetwork } from './helpers.js';

const PORT = 7077;
const RESYNC = ['--resync-interval', '1s'];
const JUMP = `-A POSTROUTING -m comment --comment "weft masquerade" -j ${MASQ_CHAIN}`;

// Answers each connection with the peer's address as this end sees it, then closes.
const SERVER = `const net = require('node:net');
const [host, port] = process.argv.slice(1);
net.createServer((s) => { s.on('error', () => {}); s.end(s.remoteAddress + '\\n'); })
  .listen(Number(port), host, () => console.log('listening'));`;
// Prints what the server answered; exits non-zero when nothing answers within a second.
const CLIENT = `const net = require('node:net');
const [host, port] = process.argv.slice(1);
setTimeout(() => process.exit(4), 1500);
const s = net.connect({ host, port: Number(port), timeout: 1000 });
let out = '';
s.on('data', (d) => (out += d));
s.on('end', () => { process.stdout.write(out.trim()); process.exit(0); });
s.on('timeout', () => process.exit(2));
s.on('error', () => process.exit(3));`;

let tb: Testbed;
const servers: ChildProcess[] = [];

testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml()) });
afterAll(() => {
  for (const s of servers) s.kill('SIGKILL');
});

/** Starts the source-reporting server on ip inside a namespace; resolves once it listens. */
async function startServer(ns: string, ip: string): Promise<void> {
  const proc = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, ip, String(PORT)], { stdio: ['ignore', 'pipe', 'pipe'] });
  servers.push(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await poll(() => out.includes('listening') || proc.exitCode !== null, { timeoutMs: 10_000, what: `the server on ${ip}` });
  expect(out).toContain('listening');
}

/** The source address the server at ip saw for a connection from `from`; '' when none answered. */
async function sourceSeen(from: Container, ip: string): Promise<string> {
  const r = await execIn(from.ns, process.execPath, ['-e', CLIENT, ip, String(PORT)]);
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

/** The nat table of a host: its POSTROUTING rules, weft's chain's rules, whether the chain exists. */
async function natOf(host: Host) {
  const r = await execIn(host.ns, 'iptables-save', ['-t', 'nat']);
  expect(r.exitCode, r.stderr).toBe(0);
  const lines = r.stdout.split('\n');
  return {
    postrouting: lines.filter((l) => l.startsWith('-A POSTROUTING ')),
    chain: lines.filter((l) => l.startsWith(`-A ${MASQ_CHAIN} `)),
    declared: lines.some((l) => l.startsWith(`:${MASQ_CHAIN} `)),
  };
}

/** Polls until the host's chain holds exactly the rules for its current subnet.env, one jump. */
async function waitForRulesOfSubnetEnv(host: Host, what: string, network?: string) {
  return poll(
    async () => {
      const env = tb.readSubnetEnv(host);
      if (!env || (network && env.network.toString() !== network)) return undefined;
      const nat = await natOf(host);
      const wanted = masqChainRules(MASQ_CHAIN, { network: env.network, subnet: env.subnet });
      const ok = JSON.stringify(nat.chain) === JSON.stringify(wanted) && nat.postrouting.filter((l) => l.includes(MASQ_CHAIN)).length === 1;
      return ok ? env : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 100, what },
  );
}

describe('--ip-masq', () => {
  let masq: { host: Host; container: Container };
  let plain: { host: Host; container: Container };
  let world: Host;

  it("masquerades container traffic leaving the overlay to the host's address, and nothing within it", async () => {
    world = await tb.addHost(9, { segment: 1 }); // no agent: just an address outside the overlay
    masq = await joinHost(tb, 1, ['--ip-masq', ...RESYNC]);
    plain = await joinHost(tb, 2);
    expect(tb.readSubnetEnv(masq.host)?.ipMasq).toBe(true);
    expect(tb.readSubnetEnv(plain.host)?.ipMasq).toBe(false);
    await startServer(world.ns, world.ip);
    await startServer(plain.container.ns, plain.container.ip);

    // The far end sees the masquerading host's address (the rules land shortly after the lease).
    const seen = await poll(async () => sourceSeen(masq.container, world.ip), { timeoutMs: 10_000, what: 'the world to answer c1' });
    expect(seen).toBe(masq.host.ip);
    // Container to container keeps its source (those packets RETURN before any MASQUERADE).
    await tb.waitReachable(masq.container, plain.container.ip, 10_000);
    expect(await sourceSeen(masq.container, plain.container.ip)).toBe(masq.container.ip);
    // The host without --ip-masq sends its container's address out, and the world cannot answer it.
    expect(await sourceSeen(plain.container, world.ip)).toBe('');
    expect((await tb.ping(plain.container, world.ip, { count: 2, waitSec: 1 })).received).toBe(0);

    const nat = await natOf(masq.host);
    expect(nat.postrouting).toEqual([JUMP]);
    expect((await natOf(plain.host)).declared).toBe(false);
  });

  it('puts back rules someone removed, at its next resync', async () => {
    const ns = masq.host.ns;
    expect((await execIn(ns, 'iptables', ['-w', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'weft masquerade', '-j', MASQ_CHAIN])).exitCode).toBe(0);
    expect((await execIn(ns, 'iptables', ['-w', '-t', 'nat', '-F', MASQ_CHAIN])).exitCode).toBe(0);
    expect(await natOf(masq.host)).toMatchObject({ postrouting: [], chain: [] });

    await waitForRulesOfSubnetEnv(masq.host, 'the agent to restore its rules');
    expect(await poll(async () => sourceSeen(masq.container, world.ip), { timeoutMs: 5_000, what: 'the world to answer c1 again' })).toBe(masq.host.ip);
    expect(tb.agentLog(masq.host)).toMatch(/rewrote the --ip-masq rules/);
  });

  it('replaces the chain when its subnet changes under it', async () => {
    const before = tb.readSubnetEnv(masq.host)!.subnet;
    // Move the allowed range away from the host's subnet (--force: leases fall outside it).
    const third = Number(before.network.toString().split('.')[2]);
    const [min, max] = third < 128 ? ['10.5.200.0', '10.5.250.0'] : ['10.5.10.0', '10.5.60.0'];
    const yaml = networkYaml().replace('  subnetLength: 24\n', `  subnetLength: 24\n  subnetMin: ${min}\n  subnetMax: ${max}\n`);
    const r = await tb.weft(['apply', '--force', '-f', '-'], { input: yaml });
    expect(r.exitCode, r.stderr).toBe(0);

    const env = await poll(
      async () => {
        const e = tb.readSubnetEnv(masq.host);
        return e && !e.subnet.equals(before) ? e : undefined;
      },
      { timeoutMs: 15_000, what: 'the agent to move to a subnet in the new range' },
    );
    await waitForRulesOfSubnetEnv(masq.host, `the chain to hold the rules for ${env.subnet}`);
    const nat = await natOf(masq.host);
    expect(nat.chain.join('\n')).not.toContain(before.toString());
  });

  it('replaces the chain for a new network after a restart, and removes it when restarted without --ip-masq', async () => {
    const host = masq.host;
    await tb.stopAgent(host);
    const r = await tb.weft(['apply', '--force', '-f', '-'], { input: networkYaml({ cidr: '10.6.0.0/16' }) });
    expect(r.exitCode, r.stderr).toBe(0);
    tb.startAgent(host, ['--ip-masq', ...RESYNC]);
    const env = await waitForRulesOfSubnetEnv(host, 'the chain to hold the rules for 10.6.0.0/16', '10.6.0.0/16');
    expect(env.network.toString()).toBe('10.6.0.0/16');
    const nat = await natOf(host);
    expect(nat.chain.join('\n')).not.toContain('10.5.');
    expect(nat.postrouting).toEqual([JUMP]);

    await tb.stopAgent(host);
    tb.startAgent(host, RESYNC);
    await waitForRun(tb, host, 2, /removed --ip-masq rules left by an earlier run/);
    expect(await natOf(host)).toEqual({ postrouting: [], chain: [], declared: false });
    await poll(() => tb.readSubnetEnv(host)?.ipMasq === false, { timeoutMs: 10_000, what: 'FLANNEL_IPMASQ=false in subnet.env' });
  });
});
