import { describe, expect, it } from 'vitest';
import { parseAgentFlags, UsageError, type AgentOptions } from '../../src/agent/flags.js';

const parse = (argv: string[], env: Record<string, string> = {}) => parseAgentFlags(argv, env) as AgentOptions;

describe('weft agent flags', () => {
  it('has flanneld defaults', () => {
    const o = parse(['--node-name', 'h1']);
    expect(o.etcd.endpoints).toEqual(['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
    expect(o.forwardRules).toBe(true);
    expect(o.iptablesResyncMs).toBe(5000);
    expect(o.ipMasqRandomFully).toBe(true);
    expect(o.notices).toEqual([]);
    expect(o.prefix).toBe('/coreos.com/network');
    expect(o.subnetFile).toBe('/run/flannel/subnet.env');
    expect(o.renewMarginMs).toBe(60 * 60_000);
    expect(o.ipMasq).toBe(false);
    expect(o.healthzPort).toBe(0);
    expect(o.network).toBe('default');
    expect(o.resyncIntervalMs).toBe(60_000);
    expect(o.logLevel).toBe('info');
    expect(o.logFormat).toBeUndefined(); // decided by whether stderr is a terminal
  });

  it('takes --log-level and --log-format, or WEFT_LOG_LEVEL and WEFT_LOG_FORMAT', () => {
    expect(parse(['--node-name', 'h', '--log-level', 'debug', '--log-format=text'])).toMatchObject({ logLevel: 'debug', logFormat: 'text' });
    expect(parse(['--node-name', 'h'], { WEFT_LOG_LEVEL: 'warn', WEFT_LOG_FORMAT: 'json' })).toMatchObject({ logLevel: 'warn', logFormat: 'json' });
    expect(parse(['--node-name', 'h', '--log-level', 'error'], { WEFT_LOG_LEVEL: 'debug' }).logLevel).toBe('error');
  });

  it('accepts Go-style single-dash flags and repeated --iface', () => {
    const o = parse(['-etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379', '-iface', 'eth1', '--iface', '192.0.2.7', '-ip-masq', '--node-name=h1']);
    expect(o.etcd.endpoints).toEqual(['http://10.0.0.1:2379', 'http://10.0.0.2:2379']);
    expect(o.ifaces).toEqual(['eth1', '192.0.2.7']);
    expect(o.ipMasq).toBe(true);
  });

  it('reads FLANNELD_* and WEFT_* from the environment when a flag is not given', () => {
    const o = parse([], {
      FLANNELD_ETCD_ENDPOINTS: 'http://192.0.2.254:2379',
      FLANNELD_IFACE: 'eth0',
      FLANNELD_IP_MASQ: 'true',
      FLANNELD_SUBNET_FILE: '/tmp/x.env',
      FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '30',
      WEFT_NODE_NAME: 'from-env',
      WEFT_NETWORK: 'blue',
    });
    expect(o.etcd.endpoints).toEqual(['http://192.0.2.254:2379']);
    expect(o.ifaces).toEqual(['eth0']);
    expect(o.ipMasq).toBe(true);
    expect(o.subnetFile).toBe('/tmp/x.env');
    expect(o.renewMarginMs).toBe(30 * 60_000);
    expect(o.nodeName).toBe('from-env');
    expect(o.network).toBe('blue');
  });

  it('lets a flag win over the environment, and --ip-masq=false over FLANNELD_IP_MASQ', () => {
    const o = parse(['--subnet-file', '/a', '--ip-masq=false', '--node-name', 'h'], { FLANNELD_SUBNET_FILE: '/b', FLANNELD_IP_MASQ: 'true' });
    expect(o.subnetFile).toBe('/a');
    expect(o.ipMasq).toBe(false);
  });

  it('reads the etcd password from a file without putting it in argv', () => {
    const o = parseAgentFlags(['--etcd-username', 'u', '--etcd-password-file', '/pw', '--node-name', 'h'], {}, () => 's3cret\n') as AgentOptions;
    expect(o.etcd.password).toBe('s3cret');
  });

  it.each([
    [['--bogus'], /bogus/],
    [['--iface-can-reach', 'nope'], /not an IPv4/],
    [['--public-ip', '10.0.0.300'], /public-ip/],
    [['--subnet-lease-renew-margin', '0'], /1\.\.1439/],
    [['--subnet-lease-renew-margin', '1440'], /1\.\.1439/],
    [['--healthz-port', 'http'], /healthz-port/],
    [['--network', 'subnets'], /collides/],
    [['--network', 'Bad_Name'], /DNS label/],
    [['--node-name', 'a b'], /node-name/],
    [['--etcd-password', 'x'], /needs --etcd-username/],
    [['--etcd-certfile', '/c'], /together/],
    [['--etcd-endpoints', 'localhost:2379'], /not an http/],
    [['--iface-regex', '('], /regular expression/],
    [['--resync-interval', '10'], /resync-interval/],
    [['--ip-masq=maybe'], /not a boolean/],
    [['--log-level', 'verbose'], /log-level: "verbose" is not one of debug, info, warn, error/],
    [['--log-format', 'pretty'], /log-format: "pretty" is not one of json, text/],
    [['positional'], /positional|Unexpected/i],
  ])('refuses %j', (argv, message) => {
    expect(() => parse(['--node-name', 'h', ...argv])).toThrow(UsageError);
    expect(() => parse(['--node-name', 'h', ...argv])).toThrow(message);
  });

  it('accepts every flag flanneld v0.20 to v0.28 accepts, as a unit file writes them', () => {
    const unitFile = [
      '-etcd-endpoints', 'http://192.0.2.254:2379', '-etcd-prefix=/coreos.com/network', '-iface', 'eth0', '-iface-regex', '^eth',
      '-iface-can-reach', '192.0.2.254', '-public-ip=192.0.2.1', '-public-ipv6', 'fd00::1', '-subnet-file', '/run/flannel/subnet.env',
      '-subnet-lease-renew-margin', '30', '-ip-masq', '-ip-masq-fully-random-disable', '-kube-subnet-mgr=false', '-kube-api-url', 'https://k',
      '-kube-annotation-prefix', 'flannel.alpha.coreos.com', '-kubeconfig-file', '/k', '-net-config-path', '/etc/kube-flannel/net-conf.json',
      '-set-node-network-unavailable=false', '-use-multi-cluster-cidr=false', '-healthz-ip', '127.0.0.1', '-healthz-port', '8471',
      '-iptables-resync', '10', '-iptables-forward-rules=false', '-ip-blackhole-route=false', '-v=2', '-vmodule', 'x=1', '-log_backtrace_at', 'x.go:1',
      '--node-name', 'h1',
    ];
    const o = parse(unitFile);
    expect(o).toMatchObject({
      ifaces: ['eth0'], ifaceRegex: ['^eth'], ifaceCanReach: '192.0.2.254', publicIP: '192.0.2.1', publicIPv6: 'fd00::1',
      renewMarginMs: 30 * 60_000, ipMasq: true, ipMasqRandomFully: false, forwardRules: false, iptablesResyncMs: 10_000,
      healthzIP: '127.0.0.1', healthzPort: 8471, logLevel: 'debug',
    });
    // Each ignored flag is named once, with why.
    expect(o.notices).toEqual([
      '-kube-api-url is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      '-kube-annotation-prefix is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      '-kubeconfig-file is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      '-net-config-path is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      '-set-node-network-unavailable is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      '-use-multi-cluster-cidr is accepted and ignored: used only with --kube-subnet-mgr, which weft does not support',
      "-vmodule is accepted and ignored: klog's per-file verbosity; weft logs by --log-level",
      "-log_backtrace_at is accepted and ignored: klog's stack traces at a Go source line; weft has none",
    ]);
    expect(parse(['--node-name', 'h', '-ip-blackhole-route']).notices).toEqual([
      '-ip-blackhole-route is accepted and ignored: weft does not add a blackhole route for its own subnet',
    ]);
    expect(parseAgentFlags(['-version'], {})).toBe('version');
    expect(() => parse(['--node-name', 'h', '-kube-subnet-mgr'])).toThrow(/etcd only/);
  });

  it('takes Go flag syntax: -v N, --v=N, a later value over an earlier one, and stops at --', () => {
    expect(parse(['--node-name', 'h', '-v', '0']).logLevel).toBe('info');
    expect(parse(['--node-name', 'h', '--v=3']).logLevel).toBe('debug');
    expect(parse(['--node-name', 'h', '-v=3', '--log-level', 'warn']).logLevel).toBe('warn');
    expect(parse(['--node-name', 'h', '-subnet-file', '/a', '-subnet-file', '/b']).subnetFile).toBe('/b');
    expect(parse(['--node-name', 'h', '-iptables-resync', '0x10']).iptablesResyncMs).toBe(16_000);
    expect(parse(['--node-name', 'h', '--']).nodeName).toBe('h');
    expect(() => parse(['--node-name', 'h', '-ip-masq', 'false'])).toThrow(/unexpected argument "false"/);
  });

  it('fills only flags not given from FLANNELD_*, one value each, skipping invalid ones as flanneld does', () => {
    const env = { FLANNELD_IFACE: 'eth0,eth1', FLANNELD_IFACE_REGEX: '^eth', FLANNELD_IPTABLES_FORWARD_RULES: 'false', FLANNELD_V: '2', FLANNELD_IPTABLES_RESYNC: 'soon', FLANNELD_IP_MASQ: 'yes' };
    const o = parse(['--node-name', 'h', '--iface-regex', '^ens'], env);
    expect(o.ifaces).toEqual(['eth0,eth1']); // flanneld's flagSlice.Set: one value
    expect(o.ifaceRegex).toEqual(['^ens']); // given on the command line: the variable is not read
    expect(o.forwardRules).toBe(false);
    expect(o.logLevel).toBe('debug');
    expect(o.iptablesResyncMs).toBe(5000);
    expect(o.ipMasq).toBe(false);
    expect(o.notices).toEqual([
      'FLANNELD_IPTABLES_RESYNC="soon" is not an integer; ignored, as flanneld does',
      'FLANNELD_IP_MASQ="yes" is not a boolean; ignored, as flanneld does',
    ]);
  });

  it('answers --help', () => {
    expect(parseAgentFlags(['--help'], {})).toBe('help');
    expect(parseAgentFlags(['-h'], {})).toBe('help');
  });
});
