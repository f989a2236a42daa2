// `weft agent` flags: flanneld's names and semantics (also from FLANNELD_<FLAG>), plus
// weft's own (--network, --node-name, --resync-interval; also from WEFT_<FLAG>). Pure.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { Ipv4, Ipv6, parseIp } from '../alloc/cidr.js';
import { parseDuration } from '../api/duration.js';
import { isValidNodeName } from '../api/lease.js';
import { LEVELS, LOG_FORMATS, type Level, type LogFormat } from '../log.js';
import { DEFAULT_ENDPOINTS, type EtcdOptions } from '../store/client.js';
import { EtcdFlagError, parseEtcdFlags, type EtcdConnection } from '../store/etcd-flags.js';
import { DEFAULT_NETWORK, DEFAULT_PREFIX, networkNameProblem } from '../store/layout.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface AgentOptions {
  etcd: EtcdOptions;
  prefix: string;
  ifaces: string[];
  ifaceRegex: string[];
  ifaceCanReach?: string;
  publicIP?: string;
  /** The IPv6 address peers use to reach this host (networks with IPv6). */
  publicIPv6?: string;
  subnetFile: string;
  renewMarginMs: number;
  ipMasq: boolean;
  healthzIP: string;
  /** 0 = no health listener (flanneld's default). */
  healthzPort: number;
  network: string;
  nodeName: string;
  resyncIntervalMs: number;
  logLevel: Level;
  /** Undefined: text when stderr is a terminal, JSON otherwise (decided at the edge). */
  logFormat: LogFormat | undefined;
}

type FlagSpec = { type: 'string' | 'boolean'; multiple?: boolean; env: string };

/** flanneld's flags (env FLANNELD_*) and weft's own (env WEFT_*). */
const FLAGS: Record<string, FlagSpec> = {
  'etcd-endpoints': { type: 'string', env: 'FLANNELD_ETCD_ENDPOINTS' },
  'etcd-prefix': { type: 'string', env: 'FLANNELD_ETCD_PREFIX' },
  'etcd-keyfile': { type: 'string', env: 'FLANNELD_ETCD_KEYFILE' },
  'etcd-certfile': { type: 'string', env: 'FLANNELD_ETCD_CERTFILE' },
  'etcd-cafile': { type: 'string', env: 'FLANNELD_ETCD_CAFILE' },
  'etcd-username': { type: 'string', env: 'FLANNELD_ETCD_USERNAME' },
  'etcd-password': { type: 'string', env: 'FLANNELD_ETCD_PASSWORD' },
  'etcd-password-file': { type: 'string', env: 'WEFT_ETCD_PASSWORD_FILE' },
  iface: { type: 'string', multiple: true, env: 'FLANNELD_IFACE' },
  'iface-regex': { type: 'string', multiple: true, env: 'FLANNELD_IFACE_REGEX' },
  'iface-can-reach': { type: 'string', env: 'FLANNELD_IFACE_CAN_REACH' },
  'public-ip': { type: 'string', env: 'FLANNELD_PUBLIC_IP' },
  'public-ipv6': { type: 'string', env: 'FLANNELD_PUBLIC_IPV6' },
  'subnet-file': { type: 'string', env: 'FLANNELD_SUBNET_FILE' },
  'subnet-lease-renew-margin': { type: 'string', env: 'FLANNELD_SUBNET_LEASE_RENEW_MARGIN' },
  'ip-masq': { type: 'boolean', env: 'FLANNELD_IP_MASQ' },
  'healthz-ip': { type: 'string', env: 'FLANNELD_HEALTHZ_IP' },
  'healthz-port': { type: 'string', env: 'FLANNELD_HEALTHZ_PORT' },
  network: { type: 'string', env: 'WEFT_NETWORK' },
  'node-name': { type: 'string', env: 'WEFT_NODE_NAME' },
  'resync-interval': { type: 'string', env: 'WEFT_RESYNC_INTERVAL' },
  'log-level': { type: 'string', env: 'WEFT_LOG_LEVEL' },
  'log-format': { type: 'string', env: 'WEFT_LOG_FORMAT' },
  help: { type: 'boolean', env: '' },
};

/** Every environment variable the agent's flags are read from (examples/deploy documents each). */
export const AGENT_ENV_VARS: readonly string[] = Object.values(FLAGS)
  .map((f) => f.env)
  .filter((e) => e !== '');

export const AGENT_USAGE = `Usage: weft agent [flags]

Runs on every host: acquires this host's subnet, writes subnet.env, and keeps the overlay's
kernel state in step with the leases in etcd. Each flag can also be set with the environment
variable shown (flanneld's FLANNELD_* names are honoured).

  --etcd-endpoints URLS          comma-separated (default ${DEFAULT_ENDPOINTS.join(',')})  FLANNELD_ETCD_ENDPOINTS
  --etcd-prefix PATH             (default ${DEFAULT_PREFIX})                 FLANNELD_ETCD_PREFIX
  --etcd-cafile/--etcd-certfile/--etcd-keyfile FILE   TLS                       FLANNELD_ETCD_*FILE
  --etcd-username NAME, --etcd-password PW | --etcd-password-file FILE          FLANNELD_ETCD_USERNAME/PASSWORD
  --iface NAME|IP                interface to use (repeatable; first found wins) FLANNELD_IFACE
  --iface-regex RE               interface name or IP pattern (repeatable)      FLANNELD_IFACE_REGEX
  --iface-can-reach IP           the interface that routes to IP (v4 or v6)     FLANNELD_IFACE_CAN_REACH
  --public-ip IP                 address peers use to reach this host (NAT)     FLANNELD_PUBLIC_IP
  --public-ipv6 IP               the same for a network with IPv6               FLANNELD_PUBLIC_IPV6
  --subnet-file PATH             (default /run/flannel/subnet.env)              FLANNELD_SUBNET_FILE
  --subnet-lease-renew-margin M  minutes before expiry to renew (1..1439, default 60)
  --ip-masq                      masquerade traffic leaving the network         FLANNELD_IP_MASQ
  --healthz-ip IP, --healthz-port N   /healthz, /readyz and /metrics (off unless a port is given)
  --network NAME                 which weft Network to join (default ${DEFAULT_NETWORK})  WEFT_NETWORK
  --node-name NAME               (default: the hostname)                        WEFT_NODE_NAME
  --resync-interval DURATION     full kernel resync period (default 60s)        WEFT_RESYNC_INTERVAL
  --log-level LEVEL              debug, info, warn or error (default info)      WEFT_LOG_LEVEL
  --log-format FORMAT            json or text (default: text on a terminal, else json)  WEFT_LOG_FORMAT
`;

/**
 * Go's flag package (flanneld) accepts "-flag", "-flag=v" and "--flag"; node's parseArgs
 * wants "--flag". Booleans may be written "--ip-masq=false".
 */
function normalizeArgv(argv: string[]): { args: string[]; booleans: Map<string, boolean> } {
  const args: string[] = [];
  const booleans = new Map<string, boolean>();
  for (const arg of argv) {
    const m = /^--?([a-z][a-z0-9-]*)(=(.*))?$/.exec(arg);
    const spec = m ? FLAGS[m[1]!] : undefined;
    if (m && spec?.type === 'boolean') {
      if (m[3] === undefined) booleans.set(m[1]!, true);
      else if (/^(true|1|t)$/i.test(m[3])) booleans.set(m[1]!, true);
      else if (/^(false|0|f)$/i.test(m[3])) booleans.set(m[1]!, false);
      else throw new UsageError(`--${m[1]}: "${m[3]}" is not a boolean`);
      continue;
    }
    args.push(m && spec && arg.startsWith('-') && !arg.startsWith('--') ? '-' + arg : arg);
  }
  return { args, booleans };
}

export function parseAgentFlags(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  readFile: (path: string) => string = () => {
    throw new UsageError('no file access');
  },
): AgentOptions | 'help' {
  const { args, booleans } = normalizeArgv(argv);
  const options = Object.fromEntries(
    Object.entries(FLAGS)
      .filter(([, s]) => s.type === 'string')
      .map(([name, s]) => [name, { type: 'string' as const, multiple: s.multiple ?? false }]),
  );
  let values: Record<string, string | string[] | undefined>;
  try {
    ({ values } = parseArgs({ args, options, strict: true, allowPositionals: false }) as {
      values: Record<string, string | string[] | undefined>;
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  if (booleans.get('help')) return 'help';

  const str = (name: string): string | undefined => {
    const v = values[name];
    if (typeof v === 'string') return v;
    const e = env[FLAGS[name]!.env];
    return e !== undefined && e !== '' ? e : undefined;
  };
  const list = (name: string): string[] => {
    const v = values[name];
    if (Array.isArray(v) && v.length > 0) return v;
    const e = env[FLAGS[name]!.env];
    return e ? e.split(',').map((s) => s.trim()).filter(Boolean) : [];
  };
  const bool = (name: string): boolean => {
    const b = booleans.get(name);
    if (b !== undefined) return b;
    const e = env[FLAGS[name]!.env];
    return e !== undefined && /^(true|1|t)$/i.test(e);
  };

  let connection: EtcdConnection;
  try {
    connection = parseEtcdFlags(str, readFile);
  } catch (err) {
    throw err instanceof EtcdFlagError ? new UsageError(err.message) : err;
  }
  const ifaces = list('iface');
  const ifaceRegex = list('iface-regex');
  for (const re of ifaceRegex) {
    try {
      new RegExp(re);
    } catch {
      throw new UsageError(`--iface-regex: "${re}" is not a valid regular expression`);
    }
  }
  const canReach = str('iface-can-reach');
  if (canReach !== undefined) {
    if (!parseIp(canReach)) throw new UsageError(`--iface-can-reach: "${canReach}" is not an IPv4 or IPv6 address`);
    if (ifaces.length > 0 || ifaceRegex.length > 0) {
      throw new UsageError('--iface-can-reach cannot be combined with --iface or --iface-regex');
    }
  }
  const publicIP = str('public-ip');
  if (publicIP !== undefined && !Ipv4.parse(publicIP)) throw new UsageError(`--public-ip: "${publicIP}" is not an IPv4 address`);
  const publicIPv6 = str('public-ipv6');
  if (publicIPv6 !== undefined && !Ipv6.parse(publicIPv6)) {
    throw new UsageError(`--public-ipv6: "${publicIPv6}" is not an IPv6 address`);
  }

  const marginText = str('subnet-lease-renew-margin') ?? '60';
  const margin = Number(marginText);
  if (!/^\d+$/.test(marginText) || margin < 1 || margin > 1439) {
    throw new UsageError(`--subnet-lease-renew-margin: must be 1..1439 minutes, got "${marginText}"`);
  }

  const healthzIP = str('healthz-ip') ?? '0.0.0.0';
  if (!Ipv4.parse(healthzIP)) throw new UsageError(`--healthz-ip: "${healthzIP}" is not an IPv4 address`);
  const portText = str('healthz-port') ?? '0';
  const healthzPort = Number(portText);
  if (!/^\d+$/.test(portText) || healthzPort > 65535) throw new UsageError(`--healthz-port: "${portText}" is not a port`);

  const network = str('network') ?? DEFAULT_NETWORK;
  const netProblem = networkNameProblem(network);
  if (netProblem) throw new UsageError(`--network: ${netProblem}`);
  const nodeName = str('node-name') ?? hostname();
  if (!isValidNodeName(nodeName)) throw new UsageError(`--node-name: "${nodeName}" is not a valid node name`);

  const resyncText = str('resync-interval') ?? '60s';
  const resyncIntervalMs = parseDuration(resyncText);
  if (resyncIntervalMs === undefined || resyncIntervalMs < 1000) {
    throw new UsageError(`--resync-interval: "${resyncText}" is not a duration of at least 1s`);
  }

  const logLevel = str('log-level') ?? 'info';
  if (!(LEVELS as readonly string[]).includes(logLevel)) throw new UsageError(`--log-level: "${logLevel}" is not one of ${LEVELS.join(', ')}`);
  const logFormat = str('log-format');
  if (logFormat !== undefined && !(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw new UsageError(`--log-format: "${logFormat}" is not one of ${LOG_FORMATS.join(', ')}`);
  }

  return {
    ...connection,
    ifaces,
    ifaceRegex,
    ...(canReach ? { ifaceCanReach: canReach } : {}),
    ...(publicIP ? { publicIP } : {}),
    ...(publicIPv6 ? { publicIPv6 } : {}),
    subnetFile: str('subnet-file') ?? '/run/flannel/subnet.env',
    renewMarginMs: margin * 60_000,
    ipMasq: bool('ip-masq'),
    healthzIP,
    healthzPort,
    network,
    nodeName,
    resyncIntervalMs,
    logLevel: logLevel as Level,
    logFormat: logFormat as LogFormat | undefined,
  };
}
