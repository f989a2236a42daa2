// A real etcd server for tests: a free loopback port, a throwaway data dir, stopped and
// removed afterwards. Optionally inside a network namespace (for multi-host tests), optionally
// serving TLS with client-certificate auth.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { encodeFlannelConfig, resolveNetworkOrThrow, type NetworkConfig } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';
import { Store } from '../../src/store/store.js';
import { waitFor } from './wait.js';

export interface EtcdServer {
  endpoint: string;
  dataDir: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, then SIGKILL) and deletes its data unless keepData. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** Restarts on the same port and data dir. */
  restart(): Promise<void>;
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

export interface StartEtcdOptions {
  /** Address to listen on; defaults to 127.0.0.1. */
  host?: string;
  /** Run inside this network namespace (via `ip netns exec`). */
  netns?: string;
  clientPort?: number;
  peerPort?: number;
  extraArgs?: string[];
  /** Serve clients over https with these certificates. */
  tls?: EtcdTls;
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const tls = opts.tls;
  const client = `${tls ? 'https' : 'http'}://${host}:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'weft-test',
    '--data-dir', dataDir,
    '--listen-client-urls', client,
    '--advertise-client-urls', client,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `weft-test=${peer}`,
    '--log-level', 'error',
    ...(tls ? tlsServerArgs(tls) : []),
    ...(opts.extraArgs ?? []),
  ];
  let output = '';
  let proc: ChildProcess;

  const launch = async () => {
    const [cmd, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, 'etcd', ...args]] : ['etcd', args];
    proc = spawn(cmd, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d) => (output += d));
    proc.stderr!.on('data', (d) => (output = (output + d).slice(-20000)));
    await waitFor(
      async () => {
        if (proc.exitCode !== null) throw new Error(`etcd exited ${proc.exitCode}:\n${output}`);
        return isHealthy(client, opts.netns, tls);
      },
      { timeoutMs: 20000, what: `etcd at ${client} to become healthy` },
    );
  };
  try {
    await launch();
  } catch (err) {
    // A server that never became healthy must not outlive the test or leave its data behind.
    proc!.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }

  const stopProcess = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGCONT');
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };

  return {
    endpoint: client,
    dataDir,
    get process() {
      return proc;
    },
    async stop(o = {}) {
      await stopProcess();
      if (!o.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await stopProcess();
      await launch();
    },
    pause() {
      proc.kill('SIGSTOP');
    },
    resume() {
      proc.kill('SIGCONT');
    },
    logs: () => output,
    ...(tls ? { tls } : {}),
    etcdctl: (argv, o) => etcdctl([client], argv, { ...o, ...(tls ? { tls } : {}), ...(opts.netns ? { netns: opts.netns } : {}) }),
  };
}

export function tlsServerArgs(tls: EtcdTls): string[] {
  return [
    '--cert-file', tls.cert,
    '--key-file', tls.key,
    '--trusted-ca-file', tls.ca,
    ...(tls.clientCertAuth ? ['--client-cert-auth'] : []),
  ];
}

/** etcdctl (API v3) against the given endpoints; TLS flags from tls. */
export async function etcdctl(
  endpoints: string[],
  args: string[],
  opts: EtcdctlOptions & { tls?: EtcdTls; netns?: string } = {},
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
  const [cmd, full] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, 'etcdctl', ...argv]] : ['etcdctl', argv];
  const r = await execa(cmd, full, {
    env: { ETCDCTL_API: '3' },
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    timeout: 15000,
  });
  return r.stdout;
}

export interface AuthSetup {
  rootPassword: string;
  user: string;
  password: string;
  role: string;
  /** Keys the role may read and write (granted with --prefix). */
  prefix: string;
}

/**
 * Creates root and a user whose role may read and write only under prefix, then turns auth
 * on. Passwords go over stdin so they never appear in a process listing.
 */
export async function enableAuth(etcd: Pick<EtcdServer, 'etcdctl'>, a: AuthSetup): Promise<void> {
  await etcd.etcdctl(['user', 'add', 'root', '--interactive=false'], { input: a.rootPassword + '\n' });
  await etcd.etcdctl(['user', 'grant-role', 'root', 'root']).catch(() => undefined);
  await etcd.etcdctl(['user', 'add', a.user, '--interactive=false'], { input: a.password + '\n' });
  await etcd.etcdctl(['role', 'add', a.role]);
  await etcd.etcdctl(['role', 'grant-permission', a.role, 'readwrite', a.prefix, '--prefix=true']);
  await etcd.etcdctl(['user', 'grant-role', a.user, a.role]);
  await etcd.etcdctl(['auth', 'enable']);
}

async function isHealthy(endpoint: string, netns?: string, tls?: EtcdTls): Promise<boolean> {
  if (netns) {
    // The namespace's address is not reachable from the test process; ask from inside it.
    try {
      await etcdctl([endpoint], ['endpoint', 'health'], { netns, ...(tls ? { tls } : {}) });
      return true;
    } catch {
      return false;
    }
  }
  if (tls) return httpsHealthy(endpoint, tls);
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

function httpsHealthy(endpoint: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${endpoint}/health`,
      {
        ca: readFileSync(tls.ca),
        ...(tls.client ? { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) } : {}),
        timeout: 1000,
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { health?: string }).health === 'true');
          } catch {
            resolve(false);
          }
        });
        res.on('error', () => resolve(false));
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
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
