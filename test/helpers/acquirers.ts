// Lease acquisition against a real etcd, as many agents at once: synthetic hosts numbered i
// with a stable identity (the etcd and its networks come from useEtcd in etcd.ts).
import { Ipv4, type Cidr } from '../../src/alloc/cidr.js';
import { acquireLease, type AcquireResult } from '../../src/agent/acquire.js';
import type { LeaseValue } from '../../src/api/lease.js';
import type { NetworkConfig } from '../../src/api/network.js';
import { silentLogger } from '../../src/log.js';
import { LeaseWriter } from '../../src/store/leases.js';
import type { Store } from '../../src/store/store.js';
export { useEtcd as etcdFixture } from './etcd.js';

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
