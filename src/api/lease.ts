// The lease value at <prefix>/subnets/<key>, byte-compatible with flanneld.
//
// Every value read from etcd is untrusted: decodeLease validates each field's form (IPv4,
// IPv6, MAC, integer ranges, bounded strings) so nothing unchecked reaches an `ip -batch` line.
import { Cidr, Cidr6, Ipv4, Ipv6, parseMac } from '../alloc/cidr.js';
import { describeValue, goField, parseJsonObject, type Decoded } from './json.js';

export type { Decoded };

export interface VxlanBackendData {
  VNI: number;
  VtepMAC: string;
}

export interface LeaseValue {
  /** "0.0.0.0" in an IPv6-only lease (what flanneld writes there). */
  publicIP: string;
  /** Canonical (RFC 5952) when decoded; null or absent when the host has no IPv6 stack. */
  publicIPv6?: string | null;
  backendType?: string;
  /** The IPv4 stack's vxlan data (flannel.<VNI>); absent in an IPv6-only lease. */
  backendData?: VxlanBackendData;
  /** The IPv6 stack's vxlan data (flannel-v6.<VNI>). */
  backendV6Data?: VxlanBackendData;
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

/** The IPv4 "public IP" of an IPv6-only lease: flanneld writes its zero value there. */
export const NO_PUBLIC_IP = '0.0.0.0';

/**
 * The PublicIP of a reservation made for a node name (or an IPv6 address) alone: an address
 * no host can have (the limited broadcast address), so that no flanneld host takes the
 * reservation for its own lease. flanneld looks its lease up by PublicIP only; with 0.0.0.0
 * every IPv6-only flanneld host (whose PublicIP is 0.0.0.0) would claim it. Reservations
 * written by earlier weft versions with 0.0.0.0 are still read as "no public IP".
 */
export const RESERVATION_PUBLIC_IP = '255.255.255.255';

/** Whether a value's PublicIP is one of the placeholders above rather than a host's address. */
export function isPlaceholderPublicIP(publicIP: string): boolean {
  return publicIP === NO_PUBLIC_IP || publicIP === RESERVATION_PUBLIC_IP;
}

function encodeVxlanData(d: VxlanBackendData): string {
  return `{"VNI":${d.VNI},"VtepMAC":${JSON.stringify(d.VtepMAC)}}`;
}

/** Flannel's exact field order; BackendType, BackendData and BackendV6Data omitted when empty. */
export function encodeLease(v: LeaseValue): string {
  let out = `{"PublicIP":${JSON.stringify(v.publicIP)},"PublicIPv6":${v.publicIPv6 ? JSON.stringify(v.publicIPv6) : 'null'}`;
  if (v.backendType) out += `,"BackendType":${JSON.stringify(v.backendType)}`;
  if (v.backendData) out += `,"BackendData":${encodeVxlanData(v.backendData)}`;
  if (v.backendV6Data) out += `,"BackendV6Data":${encodeVxlanData(v.backendV6Data)}`;
  if (v.nodeName) out += `,"NodeName":${JSON.stringify(v.nodeName)}`;
  return out + '}';
}

/** Why a value is refused (one shared function: decodeLease runs for every listed lease). */
function refused(error: string): { ok: false; error: string } {
  return { ok: false, error };
}

/**
 * The value's fields as flanneld spells them (and weft's NodeName). A parsed value whose keys
 * are all among these, spelled exactly so, holds each field under its own name: no other key
 * can match it case-insensitively, so goField would pick obj[name] too. Every agent start
 * decodes thousands of leases, all of them so spelled, before its first kernel work; reading
 * them directly saves goField's key list and folds (about a third of the decode). Any other
 * spelling, or any other key, goes through goField, as Go's encoding/json would read it.
 */
const LEASE_FIELDS: ReadonlySet<string> = new Set(['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'BackendV6Data', 'NodeName']);
const VXLAN_FIELDS: ReadonlySet<string> = new Set(['VNI', 'VtepMAC']);

/** Whether every key of obj is one of fields, spelled exactly so. */
function hasOnlyFields(obj: Record<string, unknown>, fields: ReadonlySet<string>): boolean {
  for (const k in obj) if (!fields.has(k)) return false;
  return true;
}

/**
 * A field as goField reads it; `exact` when hasOnlyFields said obj[key] is the same. (A field
 * the value lacks reads as undefined either way: none of these names is Object.prototype's.)
 */
function field(obj: Record<string, unknown>, key: string, exact: boolean): unknown {
  return exact ? obj[key] : goField(obj, key);
}

export function decodeLease(text: string): Decoded<LeaseValue> {
  const parsed = parseJsonObject(text, MAX_LEASE_VALUE_BYTES);
  if (!parsed.ok) return parsed;
  const obj = parsed.value;
  const exact = hasOnlyFields(obj, LEASE_FIELDS);

  const publicIP = field(obj, 'PublicIP', exact);
  if (!Ipv4.parse(publicIP)) return refused(`PublicIP ${describeValue(publicIP)} is not an IPv4 address`);

  let publicIPv6: string | undefined;
  const v6 = field(obj, 'PublicIPv6', exact);
  if (v6 !== undefined && v6 !== null) {
    const ip6 = Ipv6.parse(v6);
    if (!ip6) return refused(`PublicIPv6 ${describeValue(v6)} is not an IPv6 address`);
    publicIPv6 = ip6.toString();
  }

  let backendType: string | undefined;
  const type = field(obj, 'BackendType', exact);
  if (type !== undefined && type !== '') {
    if (typeof type !== 'string' || !BACKEND_TYPE.test(type)) {
      return refused(`BackendType ${describeValue(type)} is not a backend name`);
    }
    backendType = type;
  }

  let backendData: VxlanBackendData | undefined;
  let backendV6Data: VxlanBackendData | undefined;
  if (backendType === 'vxlan') {
    // An IPv6-only lease (PublicIP 0.0.0.0) carries only BackendV6Data, as flanneld writes it.
    const ipv6Only = publicIP === NO_PUBLIC_IP && publicIPv6 !== undefined;
    const data = field(obj, 'BackendData', exact);
    if (data !== undefined && data !== null) {
      const d = decodeVxlanData(data, 'BackendData');
      if (!d.ok) return d;
      backendData = d.value;
    } else if (!ipv6Only) {
      return refused('vxlan lease has no BackendData object');
    }
    const v6data = field(obj, 'BackendV6Data', exact);
    if (v6data !== undefined && v6data !== null) {
      const d = decodeVxlanData(v6data, 'BackendV6Data');
      if (!d.ok) return d;
      backendV6Data = d.value;
    }
  }

  let nodeName: string | undefined;
  const name = field(obj, 'NodeName', exact);
  if (name !== undefined && name !== '') {
    if (!isValidNodeName(name)) return refused(`NodeName ${describeValue(name)} is not a valid node name`);
    nodeName = name;
  }
  // One literal with every field (undefined when absent): one shape for every value, its
  // fields in the object. Added one by one they went to a property array of their own, 40
  // bytes more for each of an agent's thousands of leases (docs/performance.md).
  return { ok: true, value: { publicIP: publicIP as string, publicIPv6, backendType, backendData, backendV6Data, nodeName } };
}

function decodeVxlanData(data: unknown, name: string): Decoded<VxlanBackendData> {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return refused(`vxlan lease has no ${name} object`);
  const d = data as Record<string, unknown>;
  const exact = hasOnlyFields(d, VXLAN_FIELDS);
  const vni = field(d, 'VNI', exact);
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 16_777_215) {
    return refused(`${name}.VNI ${describeValue(vni)} is not a VNI`);
  }
  const vtepMac = field(d, 'VtepMAC', exact);
  const mac = parseMac(vtepMac);
  if (!mac) return refused(`${name}.VtepMAC ${describeValue(vtepMac)} is not a unicast MAC`);
  return { ok: true, value: { VNI: vni, VtepMAC: mac } };
}

// ---- lease keys ----------------------------------------------------------------------------
//
// Flannel's key forms under <root>/subnets/:
//   IPv4 only    10.5.52.0-24
//   dual stack   10.5.52.0-24&fd00:5:0:34::-64
//   IPv6 only    0.0.0.0-0&fd00:5:0:34::-64
// The IPv6-only form is what flanneld's own key pattern accepts (and writes: its IPv4 half is
// the zero value); "0.0.0.0-0" there is a placeholder, not a subnet, so the parsed key has no
// ipv4 member and nothing ever routes or counts it. Keys are unique per host because their
// IPv6 halves differ. Only canonical forms parse, so one pair of subnets has exactly one key.

/** The subnets one lease key names; at least one member is present. */
export interface LeaseKey {
  /** The IPv4 subnet; absent in an IPv6-only key. */
  ipv4?: Cidr;
  /** The IPv6 subnet; absent in an IPv4-only key. */
  ipv6?: Cidr6;
}

const IPV6_ONLY_V4_PART = '0.0.0.0-0';

/** Parses a subnets key in any of Flannel's three forms; undefined for anything else. */
export function parseLeaseKey(key: string): LeaseKey | undefined {
  const amp = key.indexOf('&');
  if (amp < 0) {
    if (key === IPV6_ONLY_V4_PART) return undefined; // a placeholder with nothing beside it
    const ipv4 = Cidr.fromKey(key);
    return ipv4 ? { ipv4 } : undefined;
  }
  const ipv6 = Cidr6.fromKey(key.slice(amp + 1));
  if (!ipv6) return undefined;
  const v4part = key.slice(0, amp);
  if (v4part === IPV6_ONLY_V4_PART) return { ipv6 };
  const ipv4 = Cidr.fromKey(v4part);
  return ipv4 ? { ipv4, ipv6 } : undefined;
}

/** The key Flannel uses for these subnets (the inverse of parseLeaseKey). */
export function formatLeaseKey(k: LeaseKey): string {
  if (!k.ipv6) {
    if (!k.ipv4) throw new Error('a lease key names at least one subnet');
    return k.ipv4.toKey();
  }
  return `${k.ipv4 ? k.ipv4.toKey() : IPV6_ONLY_V4_PART}&${k.ipv6.toKey()}`;
}

/** "10.5.3.0/24 + fd00:5:0:34::/64", for messages. */
export function describeLeaseKey(k: LeaseKey): string {
  return [k.ipv4?.toString(), k.ipv6?.toString()].filter(Boolean).join(' + ');
}

// ---- resource names ------------------------------------------------------------------------
//
// A Lease (and an unmanaged reservation) is named after its key, but '&' and ':' are not
// allowed in Kubernetes object names (DNS subdomains). Mapping, reversible and always valid:
//   10.5.52.0-24                    -> 10.5.52.0-24                        (unchanged)
//   10.5.52.0-24&fd00:5:0:34::-64   -> 10.5.52.0-24.fd00-5-0-34-0-0-0-0-64
//   0.0.0.0-0&fd00:5:0:34::-64      -> fd00-5-0-34-0-0-0-0-64
// The IPv6 half becomes one DNS label: its eight groups (hex, no leading zeros) and the prefix
// length, joined by '-'. Commands that take a lease name accept the key itself too.

function ipv6Label(net: Cidr6): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((net.network.value >> BigInt(16 * i)) & 0xffffn).toString(16));
  return `${groups.join('-')}-${net.prefix}`;
}

const IPV6_LABEL = /^([0-9a-f]{1,4}-){8}\d{1,3}$/;

function fromIpv6Label(label: string): Cidr6 | undefined {
  if (!IPV6_LABEL.test(label)) return undefined;
  const parts = label.split('-');
  const prefix = parts.pop()!;
  const net = Cidr6.parse(`${parts.join(':')}/${prefix}`, { strict: true });
  return net && ipv6Label(net) === label ? net : undefined;
}

/** The resource name for a key's subnets. */
export function leaseResourceName(k: LeaseKey): string {
  if (!k.ipv6) return formatLeaseKey(k);
  return k.ipv4 ? `${k.ipv4.toKey()}.${ipv6Label(k.ipv6)}` : ipv6Label(k.ipv6);
}

/** The subnets a resource name stands for: either the mapped name or the key itself. */
export function parseLeaseResourceName(name: string): LeaseKey | undefined {
  const direct = parseLeaseKey(name);
  if (direct) return direct;
  const v6only = fromIpv6Label(name);
  if (v6only) return { ipv6: v6only };
  const dot = name.lastIndexOf('.');
  if (dot < 0) return undefined;
  const ipv4 = Cidr.fromKey(name.slice(0, dot));
  const ipv6 = fromIpv6Label(name.slice(dot + 1));
  return ipv4 && ipv6 ? { ipv4, ipv6 } : undefined;
}
