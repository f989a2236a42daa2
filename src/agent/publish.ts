// The lease value this host publishes. Pure.
//
// Flannel's fields for each stack the network has: the IPv4 one's public IP and vxlan data
// (BackendData), the IPv6 one's (PublicIPv6, BackendV6Data). An IPv6-only lease carries
// PublicIP 0.0.0.0 as flanneld writes it. A vxlan stack's data is published only once its
// device's MAC is known, so a lease never names a MAC that no device has.
import { NO_PUBLIC_IP, type LeaseValue } from '../api/lease.js';
import type { NetworkConfig } from '../api/network.js';
import type { Selection } from './iface.js';

export interface Published {
  config: Pick<NetworkConfig, 'ipv4' | 'ipv6' | 'backend'>;
  selection: Pick<Selection, 'publicIP' | 'publicIPv6'>;
  nodeName: string;
  /** The IPv4 vxlan device's MAC. */
  vtepMAC?: string | undefined;
  /** The IPv6 vxlan device's MAC (from the IPv6 backend, when there is one). */
  vtepMACv6?: string | undefined;
}

export function publishedLease(p: Published): LeaseValue {
  const { config, selection } = p;
  const vxlan = config.backend.type === 'vxlan';
  const vni = config.backend.vni;
  const value: LeaseValue = {
    publicIP: config.ipv4 && selection.publicIP ? selection.publicIP.toString() : NO_PUBLIC_IP,
  };
  if (config.ipv6 && selection.publicIPv6) value.publicIPv6 = selection.publicIPv6.toString();
  value.backendType = config.backend.type;
  if (vxlan && config.ipv4 && p.vtepMAC) value.backendData = { VNI: vni, VtepMAC: p.vtepMAC };
  if (vxlan && config.ipv6 && p.vtepMACv6) value.backendV6Data = { VNI: vni, VtepMAC: p.vtepMACv6 };
  value.nodeName = p.nodeName;
  return value;
}
