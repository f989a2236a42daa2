// Lease acquisition against a real etcd, as many agents at once: synthetic hosts numbered i
// with a stable identity (the etcd and its networks come from useEtcd in etcd.ts).
import { Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { acquireLease, type AcquireResult } from '../../src/agent/acquire.js';
import type { LeaseKey, LeaseValue } from '../../src/api/lease.js';
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

/**
 * Host i's lease value in a network with IPv6: public IPv6 2001:db8::<i> beside the IPv4 one
 * (dual-stack), or PublicIP 0.0.0.0 (IPv6-only), and the IPv6 device's MAC.
 */
export function valueFor6(i: number, ipv6Only: boolean): LeaseValue {
  const v = valueFor(i);
  return {
    ...v,
    ...(ipv6Only ? { publicIP: '0.0.0.0', backendData: undefined } : {}),
    publicIPv6: `2001:db8::${(i + 1).toString(16)}`,
    backendV6Data: { VNI: 1, VtepMAC: v.backendData!.VtepMAC.replace(/^02/, '06') },
  };
}

/** One agent start for host i: acquisition with its identity and its subnet.env's subnets. */
export function acquireAs(store: Store, config: NetworkConfig, i: number, previous?: LeaseKey): Promise<AcquireResult> {
  const v = config.ipv6 ? valueFor6(i, !config.ipv4) : valueFor(i);
  return acquireLease({
    store,
    writer: new LeaseWriter(store, 'default'),
    config,
    identity: {
      nodeName: v.nodeName!,
      ...(config.ipv4 ? { publicIP: Ipv4.parse(v.publicIP)! } : {}),
      ...(v.publicIPv6 ? { publicIPv6: Ipv6.parse(v.publicIPv6)! } : {}),
    },
    leaseValue: v,
    previous,
    logger: silentLogger,
  });
}
