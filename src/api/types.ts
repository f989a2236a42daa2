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
