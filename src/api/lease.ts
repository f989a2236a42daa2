// The lease value at <prefix>/subnets/<key>, byte-compatible with flanneld.
//
// Every value read from etcd is untrusted: decodeLease validates each field's form (IPv4,
// MAC, integer ranges, bounded strings) so nothing unchecked reaches an `ip -batch` line.
import { Cidr, Ipv4, parseMac } from '../alloc/cidr.js';
import { describeValue, goField } from './json.js';

export interface VxlanBackendData {
  VNI: number;
  VtepMAC: string;
}

export interface LeaseValue {
  publicIP: string;
  publicIPv6?: string | null;
  backendType?: string;
  backendData?: VxlanBackendData;
  /** weft's addition, written after flannel's fields; flanneld ignores it. */
  nodeName?: string;
}

/** The largest lease value we are willing to parse; flannel's are ~150 bytes. */
export const MAX_LEASE_VALUE_BYTES = 4096;

const NODE_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;
const BACKEND_TYPE = /^[a-z0-9-]{1,32}$/;

export function isValidNodeName(name: unknown): name is string {
  return typeof name === 'string' && NODE_NAME.test(name);
}

/** Flannel's exact field order; BackendType/BackendData omitted when empty. */
export function encodeLease(v: LeaseValue): string {
  let out = `{"PublicIP":${JSON.stringify(v.publicIP)},"PublicIPv6":${v.publicIPv6 ? JSON.stringify(v.publicIPv6) : 'null'}`;
  if (v.backendType) out += `,"BackendType":${JSON.stringify(v.backendType)}`;
  if (v.backendData) {
    out += `,"BackendData":{"VNI":${v.backendData.VNI},"VtepMAC":${JSON.stringify(v.backendData.VtepMAC)}}`;
  }
  if (v.nodeName) out += `,"NodeName":${JSON.stringify(v.nodeName)}`;
  return out + '}';
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };


export function decodeLease(text: string): Decoded<LeaseValue> {
  const fail = (error: string): Decoded<LeaseValue> => ({ ok: false, error });
  if (text.length > MAX_LEASE_VALUE_BYTES) return fail(`value is ${text.length} bytes, over ${MAX_LEASE_VALUE_BYTES}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail('value is not valid JSON');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return fail('value is not a JSON object');
  const obj = raw as Record<string, unknown>;

  const publicIP = goField(obj, 'PublicIP');
  if (!Ipv4.parse(publicIP)) return fail(`PublicIP ${describeValue(publicIP)} is not an IPv4 address`);
  const value: LeaseValue = { publicIP: publicIP as string };

  const v6 = goField(obj, 'PublicIPv6');
  if (v6 !== undefined && v6 !== null) {
    if (typeof v6 !== 'string' || !/^[0-9a-fA-F:]{2,39}$/.test(v6)) return fail(`PublicIPv6 ${describeValue(v6)} is not an IPv6 address`);
    value.publicIPv6 = v6;
  }

  const backendType = goField(obj, 'BackendType');
  if (backendType !== undefined && backendType !== '') {
    if (typeof backendType !== 'string' || !BACKEND_TYPE.test(backendType)) {
      return fail(`BackendType ${describeValue(backendType)} is not a backend name`);
    }
    value.backendType = backendType;
  }

  const data = goField(obj, 'BackendData');
  if (value.backendType === 'vxlan') {
    if (!data || typeof data !== 'object' || Array.isArray(data)) return fail('vxlan lease has no BackendData object');
    const d = data as Record<string, unknown>;
    const vni = goField(d, 'VNI');
    if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 16_777_215) {
      return fail(`BackendData.VNI ${describeValue(vni)} is not a VNI`);
    }
    const mac = parseMac(goField(d, 'VtepMAC'));
    if (!mac) return fail(`BackendData.VtepMAC ${describeValue(goField(d, 'VtepMAC'))} is not a unicast MAC`);
    value.backendData = { VNI: vni, VtepMAC: mac };
  }

  const nodeName = goField(obj, 'NodeName');
  if (nodeName !== undefined && nodeName !== '') {
    if (!isValidNodeName(nodeName)) return fail(`NodeName ${describeValue(nodeName)} is not a valid node name`);
    value.nodeName = nodeName;
  }
  return { ok: true, value };
}

/** Parses a subnets key ("10.5.3.0-24"); dual-stack keys keep only their IPv4 part. */
export function parseLeaseKey(key: string): Cidr | undefined {
  const v4 = key.split('&', 1)[0]!;
  return Cidr.fromKey(v4);
}

