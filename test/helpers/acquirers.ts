// Lease acquisition against a real etcd, as many agents at once: a shared etcd per test file,
// a fresh prefix per network, and synthetic hosts numbered i with a stable identity.
import { afterAll, beforeAll } from 'vitest';
import { Ipv4, type Cidr } from '../../src/alloc/cidr.js';
import { acquireLease, type AcquireResult } from '../../src/agent/acquire.js';
import type { LeaseValue } from '../../src/api/lease.js';
import { encodeFlannelConfig, resolveNetworkOrThrow, type NetworkConfig } from '../../src/api/network.js';
import type { NetworkSpec } from '../../src/api/types.js';
import { silentLogger } from '../../src/log.js';
import { LeaseWriter } from '../../src/store/leases.js';
import { Store } from '../../src/store/store.js';
import { startEtcd, type EtcdServer } from './etcd.js';

export interface EtcdFixture {
  readonly etcd: EtcdServer;
  /** A client with no prefix of its own, for raw puts and reads. */
  readonly admin: Store;
  /** Writes a network config (as `weft apply` does) under a fresh prefix. */
  network(spec: NetworkSpec): Promise<{ prefix: string; config: NetworkConfig }>;
}

/** Starts one etcd for the calling test file (beforeAll) and stops it (afterAll). */
export function etcdFixture(tag: string): EtcdFixture {
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

/** Host i's lease value: public IP 192.0.(2+i/256).(i%256), node-i, a unique VTEP MAC. */
export function valueFor(i: number): LeaseValue {
  const mac = `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  return { publicIP: `192.0.${2 + (i >> 8)}.${i & 255}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac }, nodeName: `node-${i}` };
}

/** One agent start for host i: acquisition with its identity and its subnet.env's subnet. */
export function acquireAs(store: Store, config: NetworkConfig, i: number, previous?: Cidr): Promise<AcquireResult> {
  const v = valueFor(i);
  return acquireLease({
    store,
    writer: new LeaseWriter(store, 'default'),
    config,
    identity: { nodeName: v.nodeName!, publicIP: Ipv4.parse(v.publicIP)! },
    leaseValue: v,
    previous,
    logger: silentLogger,
  });
}
