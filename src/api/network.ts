// Network semantics: Flannel's defaults and checks, and the projection to and from the
// config JSON that flanneld reads at <prefix>/config.
import { Cidr, Ipv4 } from '../alloc/cidr.js';
import { parseDuration } from './duration.js';
import { goField } from './json.js';
import type { FieldProblem } from './errors.js';
import { ValidationError } from './errors.js';
import type { BackendSpec, NetworkSpec } from './types.js';

export const DEFAULT_LEASE_TTL = '24h';
export const DEFAULT_VXLAN_PORT = 8472;

/** A network with every default filled in: what agents and the allocator work from. */
export interface NetworkConfig {
  name: string;
  network: Cidr;
  subnetLen: number;
  subnetMin: Ipv4;
  subnetMax: Ipv4;
  backend: {
    type: string;
    vni: number;
    /** 0 means the kernel default (8472). */
    port: number;
    mtu?: number;
    directRouting: boolean;
    gbp: boolean;
  };
  leaseTTLms: number;
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
  const bad = (field: string, message: string) => problems.push({ field, message });

  const loose = Ipv4.parseChecked(String(spec.cidr).split('/')[0]) ? Cidr.parse(spec.cidr) : undefined;
  if (!loose) {
    bad('spec.cidr', `"${String(spec.cidr)}" is not an IPv4 CIDR (a.b.c.d/n)`);
    return { problems };
  }
  const network = loose;
  if (loose.hasHostBits(spec.cidr)) {
    bad('spec.cidr', `"${spec.cidr}" has host bits set; the network address is ${network}`);
  }
  if (network.prefix > 28) {
    bad('spec.cidr', `network ${network} is too small: the prefix must be /28 or shorter`);
    return { problems };
  }

  let subnetLen: number;
  if (spec.subnetLength === undefined) {
    subnetLen = network.prefix <= 22 ? 24 : network.prefix + 2;
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

  const backend = resolveBackend(spec.backend, problems);

  const ttlText = spec.leaseTTL ?? DEFAULT_LEASE_TTL;
  const leaseTTLms = parseDuration(ttlText);
  if (leaseTTLms === undefined) {
    bad('spec.leaseTTL', `"${String(ttlText)}" is not a duration like 24h, 90m or 30s`);
  } else if (leaseTTLms < 5000 || leaseTTLms > 30 * 24 * 3_600_000) {
    bad('spec.leaseTTL', `${ttlText} is out of range (5s to 720h)`);
  }

  if (problems.length > 0 || !subnetMin || !subnetMax || !backend || leaseTTLms === undefined) {
    return { problems };
  }
  return {
    config: { name, network, subnetLen, subnetMin, subnetMax, backend, leaseTTLms },
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
  if (spec.mtu !== undefined && (!Number.isInteger(spec.mtu) || spec.mtu < 576 || spec.mtu > 9000)) {
    problems.push({ field: 'spec.backend.mtu', message: `must be 576..9000, got ${spec.mtu}` });
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
 * The compact JSON flanneld reads. Only what the user set (plus the resolved SubnetLen and
 * VNI) is written, so that flanneld derives the same defaults weft did.
 */
export function encodeFlannelConfig(spec: NetworkSpec): string {
  const network = Cidr.parse(spec.cidr);
  const out: Record<string, unknown> = { Network: network ? network.toString() : spec.cidr };
  const prefix = network?.prefix ?? 16;
  out.SubnetLen = spec.subnetLength ?? (prefix <= 22 ? 24 : prefix + 2);
  if (spec.subnetMin !== undefined) out.SubnetMin = spec.subnetMin;
  if (spec.subnetMax !== undefined) out.SubnetMax = spec.subnetMax;
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
 * Reads a config written by weft, flanneld's operators or etcdctl into a spec. Throws a
 * message (without location; the caller names the key) when it cannot be read at all.
 */
export function decodeFlannelConfig(text: string): NetworkSpec {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`config is not valid JSON: ${(err as Error).message}`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('config is not a JSON object');
  const obj = raw as Record<string, unknown>;
  const cidr = goField(obj, 'Network');
  if (typeof cidr !== 'string') throw new Error('config has no "Network" string');
  const spec: NetworkSpec = { cidr, backend: { type: 'udp' } };
  const num = (k: string) => {
    const v = goField(obj, k);
    if (v === undefined) return undefined;
    if (typeof v !== 'number') throw new Error(`config field "${k}" is not a number`);
    return v;
  };
  const str = (k: string) => {
    const v = goField(obj, k);
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw new Error(`config field "${k}" is not a string`);
    return v;
  };
  const subnetLen = num('SubnetLen');
  if (subnetLen) spec.subnetLength = subnetLen;
  const min = str('SubnetMin');
  if (min) spec.subnetMin = min;
  const max = str('SubnetMax');
  if (max) spec.subnetMax = max;
  const b = goField(obj, 'Backend');
  if (b !== undefined && b !== null) {
    if (typeof b !== 'object' || Array.isArray(b)) throw new Error('config field "Backend" is not an object');
    const bo = b as Record<string, unknown>;
    const type = goField(bo, 'Type');
    spec.backend = { type: typeof type === 'string' && type ? type : 'udp' };
    if (spec.backend.type === 'vxlan') {
      const vni = goField(bo, 'VNI');
      if (typeof vni === 'number') spec.backend.vni = vni;
      const port = goField(bo, 'Port');
      if (typeof port === 'number' && port) spec.backend.port = port;
      const mtu = goField(bo, 'MTU');
      if (typeof mtu === 'number' && mtu) spec.backend.mtu = mtu;
      if (goField(bo, 'GBP') === true) spec.backend.gbp = true;
      if (goField(bo, 'DirectRouting') === true) spec.backend.directRouting = true;
    }
  }
  return spec;
}

/** Number of subnets between subnetMin and subnetMax. */
export function capacityOf(config: NetworkConfig): number {
  const size = 2 ** (32 - config.subnetLen);
  return Math.floor((config.subnetMax.value - config.subnetMin.value) / size) + 1;
}

/** Whether a subnet can be held under this config (Flannel's "fits" check, plus bounds). */
export function subnetFits(config: NetworkConfig, subnet: Cidr): boolean {
  return (
    subnet.prefix === config.subnetLen &&
    config.network.contains(subnet) &&
    subnet.first >= config.subnetMin.value &&
    subnet.first <= config.subnetMax.value
  );
}
