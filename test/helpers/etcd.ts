// The tests' etcd: real servers on loopback, run by the one etcd supervisor
// (src/testbed/etcd-cluster.ts, which also runs the testbed's members inside its namespaces).
// startEtcdCluster runs N members that can be killed, paused and restarted one at a time;
// startEtcd is the one-member case most tests use, seen as one server; useEtcd gives a test
// file one server for its lifetime. stop()/destroy() kill every process and remove every data
// dir, and the processes are also killed if the test process exits without calling them.
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll } from 'vitest';
import { encodeFlannelConfig, resolveNetworkOrThrow, type NetworkConfig } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';
import { Store } from '../../src/store/store.js';
import type { EtcdAuthSetup } from '../../src/testbed/etcd.js';
import {
  startLoopbackEtcd,
  type EtcdCluster,
  type EtcdctlOptions,
  type EtcdTls,
  type LoopbackEtcdOptions,
} from '../../src/testbed/etcd-cluster.js';
import type { RunResult } from '../../src/testbed/netns.js';

export { freePort, type EtcdCluster, type EtcdMember, type EtcdTls, type MemberStatus } from '../../src/testbed/etcd-cluster.js';

export type StartEtcdOptions = LoopbackEtcdOptions;

/** A cluster of `size` members on loopback (3 by default). */
export function startEtcdCluster(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  return startLoopbackEtcd({ size: 3, ...opts });
}

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
  /** Everything the server has logged. */
  logs(): string;
  /** The TLS material the server was started with, if any. */
  tls?: EtcdTls;
  /** Runs etcdctl against this server (TLS flags added). */
  etcdctl(args: string[], opts?: EtcdctlOptions): Promise<RunResult>;
  /** Root, and a user whose role covers only a prefix; then auth on (as the testbed does it). */
  enableAuth(a: EtcdAuthSetup): Promise<void>;
}

/** One etcd server: a one-member cluster seen through the EtcdServer interface. */
export async function startEtcd(opts: Omit<StartEtcdOptions, 'size'> = {}): Promise<EtcdServer> {
  const cluster = await startLoopbackEtcd({ ...opts, size: 1 });
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
    enableAuth: (a) => cluster.enableAuth(a),
  };
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

/** One etcd with auth on (root, and a user whose role covers only `auth.prefix`) for the calling test file. */
export function useEtcdWithUser(auth: EtcdAuthSetup): { readonly etcd: EtcdServer } {
  let etcd: EtcdServer | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
    await etcd.enableAuth(auth);
  });
  afterAll(async () => {
    await etcd?.stop();
  });
  return {
    get etcd() {
      return etcd!;
    },
  };
}
