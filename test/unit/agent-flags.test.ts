import { describe, expect, it } from 'vitest';
import { parseAgentFlags, UsageError, type AgentOptions } from '../../src/agent/flags.js';

const parse = (argv: string[], env: Record<string, string> = {}) => parseAgentFlags(argv, env) as AgentOptions;

describe('weft agent flags', () => {
  it('has flanneld defaults', () => {
    const o = parse(['--node-name', 'h1']);
    expect(o.etcd.endpoints).toEqual(['http://127.0.0.1:2379']);
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
      FLANNELD_IFACE: 'eth0,eth1',
      FLANNELD_IP_MASQ: 'true',
      FLANNELD_SUBNET_FILE: '/tmp/x.env',
      FLANNELD_SUBNET_LEASE_RENEW_MARGIN: '30',
      WEFT_NODE_NAME: 'from-env',
      WEFT_NETWORK: 'blue',
    });
    expect(o.etcd.endpoints).toEqual(['http://192.0.2.254:2379']);
    expect(o.ifaces).toEqual(['eth0', 'eth1']);
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
    [['--iface-can-reach', '192.0.2.1', '--iface', 'eth0'], /cannot be combined/],
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

  it('answers --help', () => {
    expect(parseAgentFlags(['--help'], {})).toBe('help');
  });
});
