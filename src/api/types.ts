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

export interface NetworkSpec {
  cidr: string;
  subnetLength?: number;
  subnetMin?: string;
  subnetMax?: string;
  backend: BackendSpec;
  leaseTTL?: string;
}

export interface NetworkStatus {
  capacity: number;
  leases: number;
  reservations: number;
  free: number;
}

export interface NetworkResource {
  apiVersion: typeof API_VERSION;
  kind: 'Network';
  metadata: ObjectMeta;
  spec: NetworkSpec;
  status?: NetworkStatus;
}

export interface SubnetSpec {
  network: string;
  cidr: string;
  node?: string;
  publicIP?: string;
}

export interface SubnetResource {
  apiVersion: typeof API_VERSION;
  kind: 'Subnet';
  metadata: ObjectMeta;
  spec: SubnetSpec;
  status?: { adoptedBy?: string; publicIP?: string; vtepMAC?: string };
}

export interface LeaseSpec {
  network: string;
  subnet: string;
  node?: string;
  publicIP: string;
  backend: { type: string; vni?: number; vtepMAC?: string };
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
