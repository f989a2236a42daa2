// Network semantics: Flannel's defaults and checks, and the projection to and from the
// config JSON that flanneld reads at <prefix>/config. A network has an IPv4 stack (cidr), an
// IPv6 stack (ipv6Cidr) or both; each follows Flannel's rules for its family.
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../alloc/cidr.js';
import { parseDuration } from './duration.js';
import { goField } from './json.js';
import type { FieldProblem } from './errors.js';
import { ValidationError } from './errors.js';
import type { LeaseKey } from './lease.js';
import type { BackendSpec, NetworkSpec } from './types.js';

export const DEFAULT_LEASE_TTL = '24h';
/** The vxlan UDP port when a network names none (port 0): Linux's historical default, as flannel. */
export const DEFAULT_VXLAN_PORT = 8472;
/**
 * backend.mtu is the underlay's MTU, as flanneld's Backend.MTU: the vxlan device gets it less
 * the encapsulation (50 bytes; 70 over IPv6). The range is every value whose device MTU the
 * kernel takes (IPv4's minimum 68 + 50) up to the largest MTU a Linux link can have.
 */
export const MIN_UNDERLAY_MTU = 118;
export const MAX_UNDERLAY_MTU = 65535;

/** One stack's range: the network, the subnet length, and the first and last assignable subnet. */
export interface StackConfig<N, A> {
  network: N;
  subnetLen: number;
  subnetMin: A;
  subnetMax: A;
}
export type Ipv4Stack = StackConfig<Cidr, Ipv4>;
export type Ipv6Stack = StackConfig<Cidr6, Ipv6>;

/** A network with every default filled in: what agents and the allocator work from. */
export interface NetworkConfig {
  name: string;
  /** The IPv4 stack; absent for an IPv6-only network. */
  ipv4?: Ipv4Stack;
  /** The IPv6 stack; present for dual-stack and IPv6-only networks. */
  ipv6?: Ipv6Stack;
  backend: {
    type: string;
    vni: number;
    /** 0 means the kernel default, DEFAULT_VXLAN_PORT. */
    port: number;
    /** The underlay's MTU (flanneld's Backend.MTU); the device gets it less the encapsulation. */
    mtu?: number;
    directRouting: boolean;
    gbp: boolean;
  };
  leaseTTLms: number;
}

type Bad = (field: string, message: string) => void;

/** Flannel's IPv4 default subnet length: /24, or four subnets in a network smaller than /22. */
function defaultSubnetLen4(prefix: number): number {
  return prefix <= 22 ? 24 : prefix + 2;
}

/** Flannel's IPv6 default: /64, or four subnets in a network smaller than /62. */
function defaultSubnetLen6(prefix: number): number {
  return prefix <= 62 ? 64 : prefix + 2;
}

/** The IPv4 stack, undefined when it has problems, or 'unusable' when nothing else is worth checking. */
function resolveIpv4(spec: NetworkSpec, bad: Bad): Ipv4Stack | 'unusable' | undefined {
  const cidrText = spec.cidr;
  const loose = Ipv4.parseChecked(String(cidrText).split('/')[0]) ? Cidr.parse(cidrText) : undefined;
  if (!loose || cidrText === undefined) {
    bad('spec.cidr', `"${String(cidrText)}" is not an IPv4 CIDR (a.b.c.d/n)`);
    return 'unusable';
  }
  const network = loose;
  if (loose.hasHostBits(cidrText)) {
    bad('spec.cidr', `"${cidrText}" has host bits set; the network address is ${network}`);
  }
  if (network.prefix > 28) {
    bad('spec.cidr', `network ${network} is too small: the prefix must be /28 or shorter`);
    return 'unusable';
  }

  let subnetLen: number;
  if (spec.subnetLength === undefined) {
    subnetLen = defaultSubnetLen4(network.prefix);
  } else {
    subnetLen = spec.subnetLength;
    if (!Number.isInteger(subnetLen) || subnetLen > 30) {
      bad('spec.subnetLength', `must be an integer no larger than 30, got ${subnetLen}`);
    } else if (subnetLen < network.prefix + 2) {
      bad(
        'spec.subnetLength',
        `/${subnetLen} leaves fewer than four subnets in ${network}; use /${network.prefix + 2} or longer`,
      );
    }
  }
  const subnetSize = 2 ** (32 - subnetLen);

  const bound = (field: 'subnetMin' | 'subnetMax', fallback: number): Ipv4 | undefined => {
    const text = spec[field];
    if (text === undefined) return Ipv4.fromNumber(fallback);
    const ip = Ipv4.parseChecked(text);
    if (!ip) {
      bad(`spec.${field}`, `"${String(text)}" is not an IPv4 address`);
      return undefined;
    }
    if (!network.contains(ip)) {
      bad(`spec.${field}`, `${ip} is outside the network ${network}`);
      return undefined;
    }
    if (!Cidr.of(ip, subnetLen).network.equals(ip)) {
      bad(`spec.${field}`, `${ip} is not aligned to /${subnetLen} subnets`);
      return undefined;
    }
    return ip;
  };
  const subnetMin = bound('subnetMin', network.first + subnetSize);
  const subnetMax = bound('subnetMax', network.last - subnetSize + 1);
  if (subnetMin && subnetMax && subnetMin.value > subnetMax.value) {
    bad('spec.subnetMin', `${subnetMin} is above spec.subnetMax ${subnetMax}`);
  }
  return subnetMin && subnetMax ? { network, subnetLen, subnetMin, subnetMax } : undefined;
}

// The IPv6 twin of resolveIpv4: Flannel's IPv6 rules, in bigint arithmetic (an IPv6 range does
// not fit a number), where IPv4 stays in plain numbers for speed.
function resolveIpv6(spec: NetworkSpec, bad: Bad): Ipv6Stack | undefined {
  const text = spec.ipv6Cidr;
  const loose = Cidr6.parse(text);
  if (!loose || text === undefined) {
    bad('spec.ipv6Cidr', `"${String(text)}" is not an IPv6 CIDR (e.g. fd00:5::/48)`);
    return undefined;
  }
  const network = loose;
  if (!Cidr6.parse(text, { strict: true })) {
    bad('spec.ipv6Cidr', `"${text}" has host bits set; the network address is ${network}`);
  }
  if (network.prefix > 124) {
    bad('spec.ipv6Cidr', `network ${network} is too small: the prefix must be /124 or shorter`);
    return undefined;
  }

  let subnetLen: number;
  if (spec.ipv6SubnetLength === undefined) {
    subnetLen = defaultSubnetLen6(network.prefix);
  } else {
    subnetLen = spec.ipv6SubnetLength;
    if (!Number.isInteger(subnetLen) || subnetLen > 126) {
      bad('spec.ipv6SubnetLength', `must be an integer no larger than 126, got ${subnetLen}`);
      return undefined;
    }
    if (subnetLen < network.prefix + 2) {
      bad(
        'spec.ipv6SubnetLength',
        `/${subnetLen} leaves fewer than four subnets in ${network}; use /${network.prefix + 2} or longer`,
      );
      return undefined;
    }
  }
  const subnetSize = 1n << BigInt(128 - subnetLen);

  const bound = (field: 'ipv6SubnetMin' | 'ipv6SubnetMax', fallback: bigint): Ipv6 | undefined => {
    const given = spec[field];
    if (given === undefined) return Ipv6.fromBigInt(fallback);
    const ip = Ipv6.parse(given);
    if (!ip) {
      bad(`spec.${field}`, `"${String(given)}" is not an IPv6 address`);
      return undefined;
    }
    if (!network.contains(ip)) {
      bad(`spec.${field}`, `${ip} is outside the network ${network}`);
      return undefined;
    }
    if (!Cidr6.of(ip, subnetLen).network.equals(ip)) {
      bad(`spec.${field}`, `${ip} is not aligned to /${subnetLen} subnets`);
      return undefined;
    }
    return ip;
  };
  const subnetMin = bound('ipv6SubnetMin', network.first + subnetSize);
  const subnetMax = bound('ipv6SubnetMax', network.last - subnetSize + 1n);
  if (subnetMin && subnetMax && subnetMin.value > subnetMax.value) {
    bad('spec.ipv6SubnetMin', `${subnetMin} is above spec.ipv6SubnetMax ${subnetMax}`);
  }
  return subnetMin && subnetMax ? { network, subnetLen, subnetMin, subnetMax } : undefined;
}

/**
 * Applies Flannel's rules to a spec. Returns the resolved config, or every problem found
 * (field paths relative to the object, e.g. "spec.subnetLength").
 */
export function resolveNetwork(
  name: string,
  spec: NetworkSpec,
): { config?: NetworkConfig; problems: FieldProblem[] } {
  const problems: FieldProblem[] = [];
  const bad: Bad = (field, message) => problems.push({ field, message });

  let ipv4: Ipv4Stack | undefined;
  let ipv6: Ipv6Stack | undefined;
  if (spec.cidr === undefined && spec.ipv6Cidr === undefined) {
    bad('spec.cidr', 'is required (or spec.ipv6Cidr, for an IPv6-only network; both for dual-stack)');
  }
  if (spec.cidr !== undefined) {
    const resolved = resolveIpv4(spec, bad);
    if (resolved === 'unusable') return { problems };
    ipv4 = resolved;
  } else {
    for (const f of ['subnetLength', 'subnetMin', 'subnetMax'] as const) {
      if (spec[f] !== undefined) bad(`spec.${f}`, 'applies to the IPv4 network, and spec.cidr is not set');
    }
  }
  if (spec.ipv6Cidr !== undefined) {
    ipv6 = resolveIpv6(spec, bad);
  } else {
    for (const f of ['ipv6SubnetLength', 'ipv6SubnetMin', 'ipv6SubnetMax'] as const) {
      if (spec[f] !== undefined) bad(`spec.${f}`, 'applies to the IPv6 network, and spec.ipv6Cidr is not set');
    }
  }

  const backend = resolveBackend(spec.backend, problems);

  const ttlText = spec.leaseTTL ?? DEFAULT_LEASE_TTL;
  const leaseTTLms = parseDuration(ttlText);
  if (leaseTTLms === undefined) {
    bad('spec.leaseTTL', `"${String(ttlText)}" is not a duration like 24h, 90m or 30s`);
  } else if (leaseTTLms < 5000 || leaseTTLms > 30 * 24 * 3_600_000) {
    bad('spec.leaseTTL', `${ttlText} is out of range (5s to 720h)`);
  }

  if (problems.length > 0 || (!ipv4 && !ipv6) || !backend || leaseTTLms === undefined) {
    return { problems };
  }
  return {
    config: { name, ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}), backend, leaseTTLms },
    problems,
  };
}

function resolveBackend(
  spec: BackendSpec | undefined,
  problems: FieldProblem[],
): NetworkConfig['backend'] | undefined {
  if (!spec || typeof spec !== 'object') {
    problems.push({ field: 'spec.backend', message: 'is required (type: vxlan or host-gw)' });
    return undefined;
  }
  const type = spec.type;
  if (type !== 'vxlan' && type !== 'host-gw') {
    problems.push({
      field: 'spec.backend.type',
      message: `"${String(type)}" is not supported; use vxlan or host-gw`,
    });
    return undefined;
  }
  if (type === 'host-gw') {
    for (const f of ['vni', 'port', 'mtu', 'directRouting', 'gbp'] as const) {
      if (spec[f] !== undefined) {
        problems.push({ field: `spec.backend.${f}`, message: 'applies only to the vxlan backend' });
      }
    }
    return { type, vni: 0, port: 0, directRouting: false, gbp: false };
  }
  const vni = spec.vni ?? 1;
  if (!Number.isInteger(vni) || vni < 0 || vni > 16_777_215) {
    problems.push({ field: 'spec.backend.vni', message: `must be 0..16777215, got ${vni}` });
  }
  const port = spec.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push({ field: 'spec.backend.port', message: `must be 0..65535, got ${port}` });
  }
  if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < MIN_UNDERLAY_MTU || spec.mtu > MAX_UNDERLAY_MTU)) {
    problems.push({ field: 'spec.backend.mtu', message: `must be ${MIN_UNDERLAY_MTU}..${MAX_UNDERLAY_MTU} (the underlay's MTU), got ${spec.mtu}` });
  }
  return {
    type,
    vni,
    port,
    ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}),
    directRouting: spec.directRouting ?? false,
    gbp: spec.gbp ?? false,
  };
}

export function resolveNetworkOrThrow(name: string, spec: NetworkSpec): NetworkConfig {
  const { config, problems } = resolveNetwork(name, spec);
  if (!config) throw new ValidationError(problems.map((p) => ({ ...p, object: `network/${name}` })));
  return config;
}

/**
 * The compact JSON flanneld reads. Only what the user set (plus the resolved subnet lengths
 * and VNI) is written, so that flanneld derives the same defaults weft did. An IPv4-only
 * network's bytes are exactly what they were before IPv6 existed here.
 */
export function encodeFlannelConfig(spec: NetworkSpec): string {
  const out: Record<string, unknown> = {};
  if (spec.cidr !== undefined) {
    const network = Cidr.parse(spec.cidr);
    out.Network = network ? network.toString() : spec.cidr;
    out.SubnetLen = spec.subnetLength ?? defaultSubnetLen4(network?.prefix ?? 16);
    if (spec.subnetMin !== undefined) out.SubnetMin = spec.subnetMin;
    if (spec.subnetMax !== undefined) out.SubnetMax = spec.subnetMax;
  } else {
    out.EnableIPv4 = false;
  }
  if (spec.ipv6Cidr !== undefined) {
    const network = Cidr6.parse(spec.ipv6Cidr);
    out.EnableIPv6 = true;
    out.IPv6Network = network ? network.toString() : spec.ipv6Cidr;
    out.IPv6SubnetLen = spec.ipv6SubnetLength ?? defaultSubnetLen6(network?.prefix ?? 48);
    if (spec.ipv6SubnetMin !== undefined) out.IPv6SubnetMin = Ipv6.parse(spec.ipv6SubnetMin)?.toString() ?? spec.ipv6SubnetMin;
    if (spec.ipv6SubnetMax !== undefined) out.IPv6SubnetMax = Ipv6.parse(spec.ipv6SubnetMax)?.toString() ?? spec.ipv6SubnetMax;
  }
  const b = spec.backend;
  const backend: Record<string, unknown> = { Type: b.type };
  if (b.type === 'vxlan') {
    backend.VNI = b.vni ?? 1;
    if (b.port) backend.Port = b.port;
    if (b.mtu !== undefined) backend.MTU = b.mtu;
    if (b.gbp) backend.GBP = true;
    if (b.directRouting) backend.DirectRouting = true;
  }
  out.Backend = backend;
  return JSON.stringify(out);
}

/**
 * Reads a config written by weft, flanneld's operators or etcdctl into a spec, exactly as
 * flanneld's parser does (subnet.ParseConfig + the vxlan backend's config, Go encoding/json):
 * keys in any letter case (the last one of a field wins), unknown keys ignored, Network's
 * host bits masked, SubnetLen 0 or null = default, SubnetMin/SubnetMax "0.0.0.0" = unset,
 * EnableIPv4 true and EnableIPv6 false unless given, a disabled stack's range ignored.
 * What flanneld refuses throws flanneld's message (the caller names the key).
 */
export function decodeFlannelConfig(text: string): NetworkSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`config is not valid JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new Error(`json: cannot unmarshal ${goJsonKind(raw)} into Go value of type subnet.Config`);
  }
  const obj = raw as Record<string, unknown>;
  const typeError = (k: string, v: unknown, goType: string) =>
    new Error(`json: cannot unmarshal ${goJsonKind(v)} into Go struct field Config.${k} of type ${goType}`);
  /** uint fields: null or absent leave the default (0, "derive it"). */
  const uint = (k: string): number | undefined => {
    const v = goField(obj, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 2 ** 64 - 1) throw typeError(k, v, 'uint');
    return v === 0 ? undefined : v;
  };
  const bool = (k: string): boolean | undefined => {
    const v = goField(obj, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw typeError(k, v, 'bool');
    return v;
  };
  /** ip.IP4Net/IP6Net: the JSON text with its quotes trimmed, through Go's net.ParseCIDR (which masks host bits). */
  const cidrField = (k: string, family: 4 | 6, missing: string): string => {
    const v = goField(obj, k);
    if (v === undefined) throw new Error(missing);
    const s = goTrimmedText(v);
    const parsed = family === 4 ? Cidr.parse(s) : Cidr6.parse(s);
    if (!parsed) throw new Error(`invalid CIDR address: ${s}`);
    return parsed.toString();
  };
  /** ip.IP4 (a value: "0.0.0.0" is unset) and *ip.IP6 (a pointer: null is unset, so is "::"). */
  const addressField = (k: string, family: 4 | 6): string | undefined => {
    const v = goField(obj, k);
    if (v === undefined || (family === 6 && v === null)) return undefined;
    const s = goTrimmedText(v);
    const ip = family === 4 ? Ipv4.parseChecked(s) : Ipv6.parse(s);
    if (!ip) throw new Error('Invalid IP address format');
    if (ip.value === 0 || ip.value === 0n) return undefined;
    return ip.toString();
  };

  const spec: NetworkSpec = { backend: { type: 'udp' } };
  const enableIPv4 = bool('EnableIPv4') ?? true;
  const enableIPv6 = bool('EnableIPv6') ?? false;
  if (enableIPv4) {
    spec.cidr = cidrField('Network', 4, 'please define a correct Network parameter in the flannel config');
    const subnetLen = uint('SubnetLen');
    if (subnetLen !== undefined) spec.subnetLength = subnetLen;
    const min = addressField('SubnetMin', 4);
    if (min) spec.subnetMin = min;
    const max = addressField('SubnetMax', 4);
    if (max) spec.subnetMax = max;
  }
  if (enableIPv6) {
    spec.ipv6Cidr = cidrField('IPv6Network', 6, 'please define a correct IPv6Network parameter in the flannel config');
    const subnetLen = uint('IPv6SubnetLen');
    if (subnetLen !== undefined) spec.ipv6SubnetLength = subnetLen;
    const min = addressField('IPv6SubnetMin', 6);
    if (min) spec.ipv6SubnetMin = min;
    const max = addressField('IPv6SubnetMax', 6);
    if (max) spec.ipv6SubnetMax = max;
  }
  const b = goField(obj, 'Backend');
  if (b === undefined) return spec; // flanneld's default backend: udp
  if (b !== null && (typeof b !== 'object' || Array.isArray(b))) {
    throw new Error(`error decoding Backend property of config: json: cannot unmarshal ${goJsonKind(b)} into Go value of type struct { Type string }`);
  }
  const bo = (b ?? {}) as Record<string, unknown>;
  const type = goField(bo, 'Type');
  if (type !== undefined && type !== null && typeof type !== 'string') {
    throw new Error(`error decoding Backend property of config: json: cannot unmarshal ${goJsonKind(type)} into Go struct field .Type of type string`);
  }
  spec.backend = { type: type ?? '' };
  if (type === 'vxlan') Object.assign(spec.backend, decodeVxlanBackend(bo));
  return spec;
}

/** The vxlan backend's fields as flanneld's VXLANConfig reads them (VNI 1 and MTU "the uplink's" unless given). */
function decodeVxlanBackend(bo: Record<string, unknown>): Partial<BackendSpec> {
  const fail = (k: string, v: unknown, goType: string) =>
    new Error(`error decoding VXLAN backend config: json: cannot unmarshal ${goJsonKind(v)} into Go struct field VXLANConfig.${k.toLowerCase()} of type ${goType}`);
  const int = (k: string): number | undefined => {
    const v = goField(bo, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > 2 ** 63) throw fail(k, v, 'int');
    return v;
  };
  const bool = (k: string): boolean | undefined => {
    const v = goField(bo, k);
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') throw fail(k, v, 'bool');
    return v;
  };
  const out: Partial<BackendSpec> = {};
  const vni = int('VNI');
  if (vni !== undefined) out.vni = vni;
  const port = int('Port');
  if (port) out.port = port;
  // 0 would make flanneld's device MTU -50 (the kernel then picks its own): the uplink's, as unset.
  const mtu = int('MTU');
  if (mtu) out.mtu = mtu;
  if (bool('GBP')) out.gbp = true;
  if (bool('DirectRouting')) out.directRouting = true;
  // Learning is read (a wrong type is refused as flanneld does) but weft never turns it on.
  bool('Learning');
  return out;
}

/** The word Go's encoding/json uses for a JSON value's kind in its type errors. */
function goJsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'object') return 'object';
  if (typeof v === 'number') return `number ${String(v)}`;
  return typeof v === 'boolean' ? 'bool' : typeof v;
}

/** flanneld's address types read the raw JSON text with its quotes trimmed (so 10 is "10", null is "null"). */
function goTrimmedText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v).replace(/^"+|"+$/g, '');
}

/** Number of IPv4 subnets between subnetMin and subnetMax. */
export function ipv4Capacity(stack: Ipv4Stack): number {
  const size = 2 ** (32 - stack.subnetLen);
  return Math.floor((stack.subnetMax.value - stack.subnetMin.value) / size) + 1;
}

/** Number of IPv6 subnets between subnetMin and subnetMax (up to 2^126: a bigint). */
export function ipv6Capacity(stack: Ipv6Stack): bigint {
  const size = 1n << BigInt(128 - stack.subnetLen);
  return (stack.subnetMax.value - stack.subnetMin.value) / size + 1n;
}

/** Whether an IPv4 subnet can be held under this stack (Flannel's "compat" check, plus bounds). */
export function subnetFits(stack: Ipv4Stack, subnet: Cidr): boolean {
  return (
    subnet.prefix === stack.subnetLen &&
    stack.network.contains(subnet) &&
    subnet.first >= stack.subnetMin.value &&
    subnet.first <= stack.subnetMax.value
  );
}

export function subnet6Fits(stack: Ipv6Stack, subnet: Cidr6): boolean {
  return (
    subnet.prefix === stack.subnetLen &&
    stack.network.contains(subnet) &&
    subnet.first >= stack.subnetMin.value &&
    subnet.first <= stack.subnetMax.value
  );
}

/**
 * Whether a lease key can be held under this config: it names a fitting subnet for every
 * stack the network has, and nothing for a stack it has not (as flanneld's compat checks: a
 * dual-stack network does not reuse an IPv4-only lease, nor the reverse).
 */
export function keyFits(config: NetworkConfig, key: LeaseKey): boolean {
  const v4ok = config.ipv4 ? key.ipv4 !== undefined && subnetFits(config.ipv4, key.ipv4) : key.ipv4 === undefined;
  const v6ok = config.ipv6 ? key.ipv6 !== undefined && subnet6Fits(config.ipv6, key.ipv6) : key.ipv6 === undefined;
  return v4ok && v6ok;
}

/** "10.5.0.0/16 /24 10.5.1.0..10.5.255.0" per stack, for messages. */
export function describeRanges(config: NetworkConfig): string {
  const parts: string[] = [];
  for (const s of [config.ipv4, config.ipv6]) {
    if (s) parts.push(`${s.network} /${s.subnetLen} ${s.subnetMin}..${s.subnetMax}`);
  }
  return parts.join(' and ');
}
