// A real etcd server for tests: a free loopback port, a throwaway data dir, stopped and
// removed afterwards. Optionally inside a network namespace (for multi-host tests).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const host = opts.host ?? '127.0.0.1';
  const clientPort = opts.clientPort ?? (await freePort());
  const peerPort = opts.peerPort ?? (await freePort());
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-etcd-'));
  const client = `http://${host}:${clientPort}`;
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
        return isHealthy(client, opts.netns);
      },
      { timeoutMs: 20000, what: `etcd at ${client} to become healthy` },
    );
  };
  await launch();

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
  };
}

async function isHealthy(endpoint: string, netns?: string): Promise<boolean> {
  if (netns) {
    // The namespace's address is not reachable from the test process; ask from inside it.
    const { execa } = await import('execa');
    const r = await execa('ip', ['netns', 'exec', netns, 'etcdctl', '--endpoints', endpoint, '--command-timeout=1s', 'endpoint', 'health'], { reject: false });
    return r.exitCode === 0;
  }
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}
