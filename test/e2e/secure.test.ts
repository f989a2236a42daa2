// weft against an etcd that serves TLS with client-certificate auth AND has users and roles
// enabled: the CLI and agents work with the TLS flags and a password file, the password never
// shows in a process list, a log or CLI output, and wrong credentials or a missing client
// certificate stop an agent at once with an error that says why, not a retry storm.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import type { Testbed, ExitStatus, Host } from '../../src/testbed/topology.js';
import { expectFullMesh, findLogs, joinHost, networkYaml, testbedFor } from './helpers.js';

const PASSWORD = `weft-pw-${randomBytes(9).toString('hex')}`;
const WRONG = `not-it-${randomBytes(9).toString('hex')}`;
const AUTH_REFUSED = 'invalid authentication was requested'; // etcd's warning per refused password
let tb: Testbed;
/** Everything the CLI printed in this file, searched for the password at the end. */
const cliOutput: string[] = [];

testbedFor((created) => (tb = created), { options: { etcdTls: true, etcdAuth: { user: 'weft', password: PASSWORD } } });

async function weft(args: string[], opts: Parameters<Testbed['weft']>[1] = {}) {
  const r = await tb.weft(args, opts);
  cliOutput.push(r.stdout, r.stderr);
  return r;
}

/** Waits for the agent to exit by itself; returns how it exited and how long that took. */
async function exitOf(host: Host, startedAt: number): Promise<{ status: ExitStatus; ms: number }> {
  const agent = host.agent!;
  await poll(() => agent.status, { timeoutMs: 15_000, intervalMs: 50, what: `the agent on ${host.name} to give up` });
  return { status: agent.status!, ms: Date.now() - startedAt };
}

const count = (text: string, needle: string) => text.split('\n').filter((l) => l.includes(needle)).length;

/** Command lines of every process on the machine, NUL-separated as the kernel keeps them. */
function allCmdlines(): Map<number, string> {
  const out = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      out.set(Number(d), readFileSync(`/proc/${d}/cmdline`, 'latin1'));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

describe('TLS with client certificates and etcd auth', () => {
  it('applies a Network with the TLS flags and the password file, and refuses a CLI without credentials', async () => {
    expect(tb.etcdEndpoint).toMatch(/^https:\/\//);
    expect(statSync(tb.etcdPasswordFile!).mode & 0o777).toBe(0o600);
    const file = join(tb.workDir, 'network.yaml');
    writeFileSync(file, networkYaml());
    const applied = await weft(['apply', '-f', file]);
    expect(applied.exitCode, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/network\.weft\.io\/default created/);
    const config = await tb.etcdctl(['get', '/coreos.com/network/config', '--print-value-only']);
    expect(JSON.parse(config.stdout)).toMatchObject({ Network: '10.5.0.0/16' });

    // The password from the environment works as well as the file.
    const viaEnv = await weft(['get', 'networks'], {
      etcdFlags: [...tb.etcdFlags({ auth: false }), '--etcd-username', tb.etcdUser!],
      env: { WEFT_ETCD_PASSWORD: PASSWORD },
    });
    expect(viaEnv.exitCode, viaEnv.stderr).toBe(0);
    expect(viaEnv.stdout).toMatch(/default/);

    // Auth is really on: the same TLS flags without a user are refused, and say so.
    const anonymous = await weft(['get', 'networks'], { etcdFlags: tb.etcdFlags({ auth: false }) });
    expect(anonymous.exitCode).not.toBe(0);
    // With a client certificate and no user, etcd takes the certificate's CN as the user: no such role.
    expect(anonymous.stderr).toMatch(/denied permission|username|credentials/i);
  });

  it('runs agents on 2 hosts whose containers reach each other', async () => {
    for (const i of [1, 2]) await joinHost(tb, i);
    await expectFullMesh(tb);
    const leases = await weft(['get', 'leases', '-o', 'name']);
    expect(leases.exitCode, leases.stderr).toBe(0);
    expect(leases.stdout.trim().split('\n')).toHaveLength(2);
    for (const h of [1, 2].map((i) => tb.host(i))) {
      expect(tb.agentLog(h)).toMatch(/"?tls"?[=:]\s*true/);
    }
  });

  it('never shows the password in a command line, an agent log or CLI output', () => {
    const cmdlines = allCmdlines();
    const agentPid = tb.host(1).agent!.pid;
    // The right process: the agent itself, told where the password is rather than what it is.
    expect(cmdlines.get(agentPid)).toContain('--etcd-password-file');
    const leaking = [...cmdlines].filter(([, c]) => c.includes(PASSWORD)).map(([pid]) => pid);
    expect(leaking).toEqual([]);
    for (const h of tb.hosts.values()) expect(tb.agentLog(h)).not.toContain(PASSWORD);
    expect(cliOutput.length).toBeGreaterThan(0);
    for (const o of cliOutput) expect(o).not.toContain(PASSWORD);
  });

  it('stops an agent with a wrong password within seconds, naming the credentials, after a handful of attempts', async () => {
    const h3 = await tb.addHost(3);
    const wrongFile = join(tb.workDir, 'wrong-password');
    writeFileSync(wrongFile, WRONG + '\n', { mode: 0o600 });
    const before = count(tb.etcdLog(), AUTH_REFUSED);
    const started = Date.now();
    tb.startAgent(h3, [], { etcdFlags: tb.etcdFlags({ passwordFile: wrongFile }) });
    const { status, ms } = await exitOf(h3, started);
    const log = tb.agentLog(h3);
    // etcd may write its warning a moment after answering.
    const attempts = await poll(() => count(tb.etcdLog(), AUTH_REFUSED) - before, { timeoutMs: 5000, what: 'etcd to log the refusal' });
    console.log(`wrong password: agent exited ${status.code ?? status.signal} after ${ms} ms; etcd refused ${attempts} authentication attempts`);
    expect(status.code).not.toBe(0);
    expect(status.signal).toBeNull();
    expect(ms).toBeLessThan(10_000);
    expect(log).toMatch(/credentials/);
    expect(log).not.toContain(WRONG);
    expect(attempts).toBeLessThanOrEqual(5);
    expect(tb.readSubnetEnv(h3)).toBeUndefined();
  });

  it('stops an agent without a client certificate within seconds, saying certificate/TLS', async () => {
    const h3 = tb.host(3);
    const mark = tb.agentLog(h3).length;
    const started = Date.now();
    tb.startAgent(h3, [], { etcdFlags: tb.etcdFlags({ clientCert: false }) });
    const { status, ms } = await exitOf(h3, started);
    const log = tb.agentLog(h3).slice(mark);
    const reason = findLogs(log, /./, { level: 'error' })
      .map((e) => `${e.msg}: ${String(e.err ?? '')}`)
      .join('\n');
    console.log(`no client certificate: agent exited ${status.code ?? status.signal} after ${ms} ms: ${reason.slice(0, 300)}`);
    expect(status.code).not.toBe(0);
    expect(status.signal).toBeNull();
    expect(ms).toBeLessThan(10_000);
    expect(reason).toMatch(/certificate|TLS/);
    expect(log).not.toContain(PASSWORD);
    // The healthy agents did not notice.
    for (const h of [1, 2].map((i) => tb.host(i))) expect(h.agent!.status).toBeUndefined();
    await expectFullMesh(tb, 5000);
  });
});
