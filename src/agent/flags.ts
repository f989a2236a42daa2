// `weft agent` flags: flanneld's whole command line (v0.20 to v0.28: names, Go flag syntax,
// defaults, FLANNELD_<FLAG> filling only flags not given), plus weft's own (--network,
// --node-name, --resync-interval; also from WEFT_<FLAG>). Pure.
import { namedError } from '../api/errors.js';
import { hostname } from 'node:os';
import { Ipv4, Ipv6, parseIp } from '../alloc/cidr.js';
import { parseDuration } from '../api/duration.js';
import { isValidNodeName } from '../api/lease.js';
import { LEVELS, LOG_FORMATS, type Level, type LogFormat } from '../log.js';
import type { EtcdOptions } from '../store/client.js';
import { EtcdFlagError, parseEtcdFlags, type EtcdConnection } from '../store/etcd-flags.js';
import { DEFAULT_NETWORK, DEFAULT_PREFIX, networkNameProblem } from '../store/layout.js';

export class UsageError extends namedError('UsageError') {}

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
  /** --ip-masq-fully-random-disable: MASQUERADE without --random-fully. */
  ipMasqRandomFully: boolean;
  /** --iptables-forward-rules (flanneld's default true): ACCEPT the network's traffic in FORWARD. */
  forwardRules: boolean;
  /** --iptables-resync: how often the iptables rules are re-checked and repaired. */
  iptablesResyncMs: number;
  healthzIP: string;
  /** 0 = no health listener (flanneld's default). */
  healthzPort: number;
  network: string;
  nodeName: string;
  resyncIntervalMs: number;
  logLevel: Level;
  /** Undefined: text when stderr is a terminal, JSON otherwise (decided at the edge). */
  logFormat: LogFormat | undefined;
  /**
   * What the agent logs once at start-up: each flanneld flag it accepts but ignores (and why),
   * and each FLANNELD_* variable flanneld would also have skipped (its value is invalid).
   */
  notices: string[];
}

type FlagKind = 'string' | 'boolean' | 'int' | 'list';
interface FlagSpec {
  kind: FlagKind;
  /** Environment variable; flanneld's rule for its own flags: FLANNELD_<NAME, upper, - and . as _>. */
  env: string;
  /** For flags weft accepts and does not act on: why (named once at start-up when given). */
  ignored?: string;
}

const flannel = (kind: FlagKind, name: string, ignored?: string): [string, FlagSpec] => [
  name,
  { kind, env: `FLANNELD_${name.toUpperCase().replace(/-/g, '_')}`, ...(ignored ? { ignored } : {}) },
];
const weft = (kind: FlagKind, name: string): [string, FlagSpec] => [name, { kind, env: `WEFT_${name.toUpperCase().replace(/-/g, '_')}` }];

const KUBE_ONLY = 'used only with --kube-subnet-mgr, which weft does not support';

/**
 * Every flag flanneld v0.20 to v0.28 accepts (Go's flag package; klog's -v, -vmodule and
 * -log_backtrace_at included), then weft's own. Env FLANNELD_* / WEFT_* fill flags not given.
 */
const FLAGS: Record<string, FlagSpec> = Object.fromEntries([
  flannel('string', 'etcd-endpoints'),
  flannel('string', 'etcd-prefix'),
  flannel('string', 'etcd-keyfile'),
  flannel('string', 'etcd-certfile'),
  flannel('string', 'etcd-cafile'),
  flannel('string', 'etcd-username'),
  flannel('string', 'etcd-password'),
  flannel('list', 'iface'),
  flannel('list', 'iface-regex'),
  flannel('string', 'iface-can-reach'),
  flannel('string', 'subnet-file'),
  flannel('string', 'public-ip'),
  flannel('string', 'public-ipv6'),
  flannel('int', 'subnet-lease-renew-margin'),
  flannel('boolean', 'ip-masq'),
  flannel('boolean', 'ip-masq-fully-random-disable'),
  flannel('boolean', 'kube-subnet-mgr'),
  flannel('string', 'kube-api-url', KUBE_ONLY),
  flannel('string', 'kube-annotation-prefix', KUBE_ONLY),
  flannel('string', 'kubeconfig-file', KUBE_ONLY),
  flannel('string', 'net-config-path', KUBE_ONLY),
  flannel('boolean', 'set-node-network-unavailable', KUBE_ONLY),
  flannel('boolean', 'use-multi-cluster-cidr', KUBE_ONLY),
  flannel('boolean', 'version'),
  flannel('string', 'healthz-ip'),
  flannel('int', 'healthz-port'),
  flannel('int', 'iptables-resync'),
  flannel('boolean', 'iptables-forward-rules'),
  flannel('boolean', 'ip-blackhole-route'),
  flannel('int', 'v'),
  flannel('string', 'vmodule', "klog's per-file verbosity; weft logs by --log-level"),
  flannel('string', 'log_backtrace_at', "klog's stack traces at a Go source line; weft has none"),
  ['etcd-password-file', { kind: 'string', env: 'WEFT_ETCD_PASSWORD_FILE' }],
  weft('string', 'network'),
  weft('string', 'node-name'),
  weft('string', 'resync-interval'),
  weft('string', 'log-level'),
  weft('string', 'log-format'),
  ['help', { kind: 'boolean', env: '' }],
]);

/** flanneld's default endpoints: etcd's legacy port 4001, then 2379. */
export const FLANNELD_DEFAULT_ENDPOINTS = ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'];

/** Every environment variable the agent's flags are read from (examples/deploy documents each). */
export const AGENT_ENV_VARS: readonly string[] = Object.values(FLAGS)
  .map((f) => f.env)
  .filter((e) => e !== '');

export const AGENT_USAGE = `Usage: weft agent [flags]

Runs on every host: acquires this host's subnet, writes subnet.env, and keeps the overlay's
kernel state in step with the leases in etcd. Flags are flanneld's (v0.20 to v0.28, written
-flag, --flag, -flag=value or -flag value); each can also be set with the environment
variable shown, which fills only flags not given on the command line.

  --etcd-endpoints URLS          comma-separated (default ${FLANNELD_DEFAULT_ENDPOINTS.join(',')})  FLANNELD_ETCD_ENDPOINTS
  --etcd-prefix PATH             (default ${DEFAULT_PREFIX})                 FLANNELD_ETCD_PREFIX
  --etcd-cafile/--etcd-certfile/--etcd-keyfile FILE   TLS                       FLANNELD_ETCD_*FILE
  --etcd-username NAME, --etcd-password PW | --etcd-password-file FILE          FLANNELD_ETCD_USERNAME/PASSWORD
  --iface NAME|IP                interface to use (repeatable; first found wins) FLANNELD_IFACE (one value)
  --iface-regex RE               interface name or IP pattern (repeatable)      FLANNELD_IFACE_REGEX (one value)
  --iface-can-reach IP           the interface that routes to IP, when --iface/--iface-regex find none  FLANNELD_IFACE_CAN_REACH
  --public-ip IP                 address peers use to reach this host (NAT)     FLANNELD_PUBLIC_IP
  --public-ipv6 IP               the same for a network with IPv6               FLANNELD_PUBLIC_IPV6
  --subnet-file PATH             (default /run/flannel/subnet.env)              FLANNELD_SUBNET_FILE
  --subnet-lease-renew-margin M  minutes before expiry to renew (1..1439, default 60)
  --ip-masq                      masquerade traffic leaving the network (IPv4 and IPv6)  FLANNELD_IP_MASQ
  --ip-masq-fully-random-disable MASQUERADE without --random-fully              FLANNELD_IP_MASQ_FULLY_RANDOM_DISABLE
  --iptables-forward-rules       ACCEPT the network's traffic in FORWARD (default true)  FLANNELD_IPTABLES_FORWARD_RULES
  --iptables-resync SECONDS      how often the iptables rules are checked and repaired (default 5)
  --healthz-ip IP, --healthz-port N   /healthz, /readyz and /metrics (off unless a port is given)
  -v N                           klog verbosity: 1 or more logs at debug level  FLANNELD_V
  --version                      print the version and exit
  --network NAME                 which weft Network to join (default ${DEFAULT_NETWORK})  WEFT_NETWORK
  --node-name NAME               (default: the hostname)                        WEFT_NODE_NAME
  --resync-interval DURATION     full kernel resync period (default 60s)        WEFT_RESYNC_INTERVAL
  --log-level LEVEL              debug, info, warn or error (default info)      WEFT_LOG_LEVEL
  --log-format FORMAT            json or text (default: text on a terminal, else json)  WEFT_LOG_FORMAT

Accepted for flanneld's unit files and ignored (named in the log at start-up): --kube-api-url,
--kube-annotation-prefix, --kubeconfig-file, --net-config-path, --set-node-network-unavailable,
--use-multi-cluster-cidr (Kubernetes subnet manager only), --ip-blackhole-route, -vmodule,
-log_backtrace_at. --kube-subnet-mgr is refused: weft keeps its state in etcd.
`;

/** Go's strconv.ParseBool. */
function goBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

/** Go's strconv.ParseInt(text, 0, 64) for the values flags take: decimal, 0x, 0o, 0b, leading 0 octal, _ separators. */
function goInt(text: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/.exec(text);
  if (!m) return undefined;
  const body = m[2]!.replace(/_/g, '');
  const n = /^0[0-7]+$/.test(body) ? parseInt(body.slice(1), 8) : Number(body);
  if (!Number.isSafeInteger(n)) return undefined;
  return m[1] === '-' ? -n : n;
}

interface Given {
  /** Each flag given on the command line, with its values in order (a list flag keeps all). */
  values: Map<string, string[]>;
}

/**
 * Go's flag package, as flanneld parses: "-name" or "--name"; "-name=value" or "-name value"
 * for non-boolean flags; booleans only as "-name" or "-name=value". Parsing stops at "--".
 */
function parseGoFlags(argv: string[]): Given {
  const values = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      if (i + 1 < argv.length) throw new UsageError(`unexpected argument "${argv[i + 1]}" (weft agent takes flags only)`);
      break;
    }
    if (!arg.startsWith('-') || arg === '-') throw new UsageError(`unexpected argument "${arg}" (weft agent takes flags only)`);
    const m = /^--?([^-=][^=]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`bad flag syntax: ${arg}`);
    // Go's flag package answers -h and -help with the usage (flanneld then exits 0).
    const name = m[1] === 'h' ? 'help' : m[1]!;
    const spec = FLAGS[name];
    if (!spec) throw new UsageError(`flag provided but not defined: -${name}`);
    let value = m[2];
    if (spec.kind === 'boolean') {
      value ??= 'true';
    } else if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    const list = spec.kind === 'list' ? (values.get(name) ?? []) : [];
    values.set(name, [...list, value]);
  }
  return { values };
}

export function parseAgentFlags(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
  readFile: (path: string) => string = () => {
    throw new UsageError('no file access');
  },
): AgentOptions | 'help' | 'version' {
  const { values } = parseGoFlags(argv);
  const notices: string[] = [];

  /**
   * A flag's value: the command line's, else its environment variable's when set and not
   * empty (flanneld's SetFlagsFromEnv: one value, even for a repeatable flag). A variable
   * whose value the flag cannot take is skipped, as flanneld does, and named.
   */
  const raw = (name: string): string[] | undefined => {
    const given = values.get(name);
    if (given) return given;
    const e = env[FLAGS[name]!.env];
    return e !== undefined && e !== '' ? [e] : undefined;
  };
  const fromEnv = (name: string) => !values.has(name);
  const str = (name: string): string | undefined => raw(name)?.at(-1);
  const list = (name: string): string[] => raw(name) ?? [];
  // A Go-typed flag: a bad value on the command line is an error; in FLANNELD_* it is skipped
  // and named, as flanneld does.
  const typed = <T>(name: string, fallback: T, parse: (text: string) => T | undefined, what: string): T => {
    const text = str(name);
    if (text === undefined) return fallback;
    const v = parse(text);
    if (v !== undefined) return v;
    if (fromEnv(name)) {
      notices.push(`${FLAGS[name]!.env}="${text}" is not ${what}; ignored, as flanneld does`);
      return fallback;
    }
    throw new UsageError(`-${name}: "${text}" is not ${what}`);
  };
  const bool = (name: string, fallback: boolean): boolean => typed(name, fallback, goBool, 'a boolean');
  const int = (name: string, fallback: number): number => typed(name, fallback, goInt, 'an integer');

  if (bool('help', false)) return 'help';
  if (bool('version', false)) return 'version';
  if (bool('kube-subnet-mgr', false)) {
    throw new UsageError('--kube-subnet-mgr: weft keeps its subnets in etcd only; it cannot take them from the Kubernetes API');
  }
  for (const [name, spec] of Object.entries(FLAGS)) {
    if (spec.ignored && raw(name) !== undefined) notices.push(`-${name} is accepted and ignored: ${spec.ignored}`);
  }
  if (bool('ip-blackhole-route', false)) {
    notices.push('-ip-blackhole-route is accepted and ignored: weft does not add a blackhole route for its own subnet');
  }

  let connection: EtcdConnection;
  try {
    // flanneld's default endpoints (both of etcd's ports), not the CLI's.
    connection = parseEtcdFlags((f) => str(f) ?? (f === 'etcd-endpoints' ? FLANNELD_DEFAULT_ENDPOINTS.join(',') : undefined), readFile);
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
  }
  const publicIP = str('public-ip');
  if (publicIP !== undefined && !Ipv4.parse(publicIP)) throw new UsageError(`--public-ip: "${publicIP}" is not an IPv4 address`);
  const publicIPv6 = str('public-ipv6');
  if (publicIPv6 !== undefined && !Ipv6.parse(publicIPv6)) {
    throw new UsageError(`--public-ipv6: "${publicIPv6}" is not an IPv6 address`);
  }

  const margin = int('subnet-lease-renew-margin', 60);
  if (margin < 1 || margin > 1439) {
    throw new UsageError(`--subnet-lease-renew-margin: must be 1..1439 minutes, got "${str('subnet-lease-renew-margin')}"`);
  }
  const resyncSeconds = int('iptables-resync', 5);
  if (resyncSeconds < 1) throw new UsageError(`--iptables-resync: must be at least 1 second, got ${resyncSeconds}`);

  const healthzIP = str('healthz-ip') ?? '0.0.0.0';
  if (!Ipv4.parse(healthzIP)) throw new UsageError(`--healthz-ip: "${healthzIP}" is not an IPv4 address`);
  const healthzPort = int('healthz-port', 0);
  if (healthzPort < 0 || healthzPort > 65535) throw new UsageError(`--healthz-port: "${str('healthz-port')}" is not a port`);

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

  // klog's -v: any verbosity above 0 asks for more than flanneld's default lines.
  const logLevel = str('log-level') ?? (int('v', 0) > 0 ? 'debug' : 'info');
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
    ipMasq: bool('ip-masq', false),
    ipMasqRandomFully: !bool('ip-masq-fully-random-disable', false),
    forwardRules: bool('iptables-forward-rules', true),
    iptablesResyncMs: resyncSeconds * 1000,
    healthzIP,
    healthzPort,
    network,
    nodeName,
    resyncIntervalMs,
    logLevel: logLevel as Level,
    logFormat: logFormat as LogFormat | undefined,
    notices,
  };
}
