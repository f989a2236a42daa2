// The testbed's etcd: one member or a 3-member cluster inside the underlay namespace, with
// TLS (client-certificate auth from a throwaway PKI) and users and roles when asked for.
// This file lays the members out and gives weft its connection flags; running them (start,
// health, leader, kill, restart, etcdctl, auth) is the one etcd supervisor, etcd-cluster.ts.
// Passwords travel in files or the environment, never on a command line.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdCluster, type EtcdMemberSpec } from './etcd-cluster.js';
import { createPki, type Pki } from './pki.js';

/** Which connection flags etcdFlags() returns; everything the testbed set up by default. */
export interface EtcdFlagOptions {
  /** With --etcd-certfile/--etcd-keyfile (TLS testbeds); false leaves only the CA. */
  clientCert?: boolean;
  /** With --etcd-username and --etcd-password-file (auth testbeds). */
  auth?: boolean;
  /** Another password file, e.g. one holding a wrong password. */
  passwordFile?: string;
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
  private readonly opts: EtcdInNetnsOptions;
  private readonly members: EtcdMemberSpec[];
  private started?: EtcdCluster;

  constructor(opts: EtcdInNetnsOptions) {
    this.opts = opts;
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
        clientUrl: `${scheme}://${opts.etcdHost}:${base + 2 * i}`,
        peerUrl: `http://127.0.0.1:${2380 + 2 * i}`,
        dataDir: join(opts.workDir, single ? 'etcd' : `etcd-${i}`),
        logPath: join(opts.workDir, single ? 'etcd.log' : `etcd-${i}.log`),
      };
    });
    this.etcdEndpoints = this.members.map((m) => m.clientUrl);
    this.etcdEndpoint = this.etcdEndpoints[0]!;
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

  /** Makes the PKI and the password file when asked for, starts the members, then turns auth on. */
  async start(): Promise<void> {
    const { workDir, underlay, runId, graceMs } = this.opts;
    if (this.etcdTls) this.pki = await createPki({ dir: join(workDir, 'pki') });
    const pki = this.pki;
    const auth = this.etcdAuth;
    if (auth) writeFileSync(this.etcdPasswordFile!, auth.password + '\n', { mode: 0o600 });
    this.started = new EtcdCluster({
      members: this.members,
      netns: underlay,
      graceMs,
      ...(pki ? { tls: { ca: pki.ca, ...pki.server, clientCertAuth: true, client: pki.client } } : {}),
      memberOptions: {
        ...(this.members.length > 1 ? { token: `weft-${runId}` } : {}),
        // zap at warn level logs each refused handshake and each refused password: tests count them.
        ...(pki || auth ? { logArgs: ['--logger', 'zap', '--log-level', 'warn'] } : {}),
      },
    });
    await this.started.start();
    if (auth) {
      const prefix = this.opts.etcdPrefix ?? '/coreos.com/network';
      await this.started.enableAuth({ ...auth, rootPassword: randomBytes(12).toString('hex'), role: `${auth.user}-rw`, prefix });
    }
  }

  /** The running members (kill, restart, pause, leader, etcdctl as root, watches); after start(). */
  get cluster(): EtcdCluster {
    if (!this.started) throw new Error('the testbed etcd is not started');
    return this.started;
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

  /** Teardown: kills the etcdctl watches. */
  killWatches(): void {
    this.started?.killWatches();
  }

  /** Teardown: stops every member (SIGTERM, a paused one resumed first; SIGKILL after the grace period). */
  async stop(): Promise<void> {
    await this.started?.stop();
  }
}
