// The three kinds weft serves, in the shape users write and read them (kubectl-style).

export const API_GROUP = 'weft.io';
export const API_VERSION = `${API_GROUP}/v1alpha1`;
export const KINDS = ['Network', 'Subnet', 'Lease'] as const;
export type Kind = (typeof KINDS)[number];

export interface ObjectMeta {
  name: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export type BackendType = 'vxlan' | 'host-gw';

export interface BackendSpec {
  type: BackendType | string;
  vni?: number;
  port?: number;
  mtu?: number;
  directRouting?: boolean;
  gbp?: boolean;
}

/** A Network is IPv4-only (cidr), dual-stack (cidr and ipv6Cidr) or IPv6-only (ipv6Cidr). */
export interface NetworkSpec {
  /** The IPv4 range (Flannel's Network); absent for an IPv6-only network. */
  cidr?: string;
  subnetLength?: number;
  subnetMin?: string;
  subnetMax?: string;
  /** The IPv6 range (Flannel's IPv6Network, with EnableIPv6). */
  ipv6Cidr?: string;
  ipv6SubnetLength?: number;
  ipv6SubnetMin?: string;
  ipv6SubnetMax?: string;
  backend: BackendSpec;
  leaseTTL?: string;
}

export interface NetworkStatus {
  /** IPv4 subnets between subnetMin and subnetMax (absent for an IPv6-only network). */
  capacity?: number;
  /** Keys in use (leased or reserved) that fit the network: one per host, whatever its stacks. */
  leases: number;
  reservations: number;
  /** IPv4 subnets neither leased nor reserved. */
  free?: number;
  /** The same for IPv6, capped at Number.MAX_SAFE_INTEGER (an IPv6 range can hold 2^126). */
  ipv6Capacity?: number;
  ipv6Free?: number;
}

export interface NetworkResource {
  apiVersion: typeof API_VERSION;
  kind: 'Network';
  metadata: ObjectMeta;
  spec: NetworkSpec;
  status?: NetworkStatus;
}

/** A reservation: the subnet of each stack its network has, for a node and/or public IP. */
export interface SubnetSpec {
  network: string;
  /** The IPv4 subnet; absent in an IPv6-only network. */
  cidr?: string;
  /** The IPv6 subnet; required in a network with IPv6. */
  ipv6Cidr?: string;
  node?: string;
  publicIP?: string;
  /** Identifies the host in an IPv6-only network (it has no IPv4 public IP). */
  publicIPv6?: string;
}

export interface SubnetResource {
  apiVersion: typeof API_VERSION;
  kind: 'Subnet';
  metadata: ObjectMeta;
  spec: SubnetSpec;
  status?: { adoptedBy?: string; publicIP?: string; publicIPv6?: string; vtepMAC?: string; ipv6VtepMAC?: string };
}

export interface LeaseSpec {
  network: string;
  /** The IPv4 subnet; absent for an IPv6-only key. */
  subnet?: string;
  ipv6Subnet?: string;
  node?: string;
  /** Absent for an IPv6-only lease (whose value carries flannel's placeholder 0.0.0.0). */
  publicIP?: string;
  publicIPv6?: string;
  backend: { type: string; vni?: number; vtepMAC?: string; ipv6VtepMAC?: string };
  /** RFC 3339; absent for reservations (no etcd lease). */
  expiry?: string;
  reserved?: boolean;
}

export interface LeaseResource {
  apiVersion: typeof API_VERSION;
  kind: 'Lease';
  metadata: ObjectMeta;
  spec: LeaseSpec;
}

export type Resource = NetworkResource | SubnetResource | LeaseResource;

/**
 * A node as its agent last reported it (read-only: agents publish it, nothing applies it).
 * Not one of KINDS: there is no CRD and no spec, only observed status.
 */
export interface NodeResource {
  apiVersion: typeof API_VERSION;
  kind: 'Node';
  metadata: ObjectMeta;
  status: NodeResourceStatus;
}

export interface NodeResourceStatus {
  network: string;
  ready?: boolean;
  reason?: string;
  lease?: string;
  /** Whether that lease key still exists and names this node (false: gone or taken over). */
  leaseFound?: boolean;
  subnet?: string;
  subnetIPv6?: string;
  publicIP?: string;
  publicIPv6?: string;
  reserved?: boolean;
  peers?: { desired: number; programmed: number; skipped: number };
  lastSync?: string;
  version?: string;
  startedAt?: string;
  publishedAt?: string;
}

/** What `weft get -o yaml|json|name` prints. */
export type Printable = Resource | NodeResource;
