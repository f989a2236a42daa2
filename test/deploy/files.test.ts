// The deployment files in examples/deploy, checked against what the agent really reads: the
// systemd unit (strictly parsed always; `systemd-analyze verify` too where it exists), the
// environment file (every variable one the agent reads, and every one the agent reads
// documented), the CNI config list, and the Docker drop-in.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { AGENT_ENV_VARS, parseAgentFlags, type AgentOptions } from '../../src/agent/flags.js';
import { agentEnvOf, nodeEnvOf, nodeFlagsOf, WEFT_BIN } from '../../src/testbed/paths.js';
import { parseUnitFile, valueOf, valuesOf } from './unit-file.js';

const DEPLOY = new URL('../../examples/deploy/', import.meta.url).pathname;
const REPO = new URL('../../', import.meta.url).pathname;
const read = (name: string) => readFileSync(join(DEPLOY, name), 'utf8');

/** Read by the logger (src/log.ts) rather than by a flag. */
const LOGGER_ENV = ['WEFT_LOG_LEVEL'];
/** The agent's defaults, from its own flag parser. */
const defaults = parseAgentFlags([], {}) as AgentOptions;

describe('weft-agent.service', () => {
  const { entries, problems } = parseUnitFile(read('weft-agent.service'), 'weft-agent.service');
  const one = (key: string, section = 'Service') => valueOf(entries, section, key);
  const words = (key: string) => valuesOf(entries, 'Service', key).flatMap((v) => v.split(/\s+/));

  it('is a well-formed unit: known sections and keys, each once, absolute Exec paths', () => {
    expect(problems).toEqual([]);
    expect(new Set(entries.map((e) => e.section))).toEqual(new Set(['Unit', 'Service', 'Install']));
  });

  it('runs `weft agent` with its flags from the environment file, restarting always, once the network is online', () => {
    expect(valuesOf(entries, 'Service', 'ExecStart')).toEqual(['/usr/local/bin/weft agent']);
    expect(one('EnvironmentFile')).toBe('/etc/weft/weft-agent.env');
    expect(one('Restart')).toBe('always');
    expect(one('RestartSec')).toMatch(/^\d+s$/);
    expect(valueOf(entries, 'Unit', 'StartLimitIntervalSec')).toBe('0');
    expect(valuesOf(entries, 'Unit', 'After').join(' ').split(' ')).toContain('network-online.target');
    expect(valuesOf(entries, 'Unit', 'Wants').join(' ').split(' ')).toContain('network-online.target');
    expect(valueOf(entries, 'Install', 'WantedBy')).toBe('multi-user.target');
    expect(one('LimitNOFILE')).toMatch(/^\d+$/);
  });

  it('is sandboxed to what the agent needs', () => {
    expect(new Set(words('CapabilityBoundingSet'))).toEqual(new Set(['CAP_NET_ADMIN', 'CAP_NET_RAW']));
    expect(new Set(words('RestrictAddressFamilies'))).toEqual(new Set(['AF_UNIX', 'AF_INET', 'AF_INET6', 'AF_NETLINK']));
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['ProtectKernelTunables', 'yes'],
      ['RestrictNamespaces', 'yes'],
      ['RuntimeDirectoryPreserve', 'yes'],
    ]) {
      expect(one(key!), key).toBe(value);
    }
    // The only writable place is /run/<RuntimeDirectory>: the agent's default subnet file is there.
    const runtime = one('RuntimeDirectory');
    expect(defaults.subnetFile.startsWith(`/run/${runtime}/`)).toBe(true);
    expect(words('ReadWritePaths')).toEqual(['-/run/xtables.lock']);
  });

  it('reaches the agent binary and the env file the examples provide', () => {
    // bin/weft is the program `npm install -g` links as /usr/local/bin/weft.
    expect(JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).bin).toEqual({ weft: 'bin/weft' });
    expect(existsSync(join(DEPLOY, 'weft-agent.env'))).toBe(true);
  });
});

describe('weft-agent.env', () => {
  const text = read('weft-agent.env');
  const lines = text.split('\n');
  const active = lines.filter((l) => /^[A-Z][A-Z0-9_]*=/.test(l));
  const examples = lines.filter((l) => /^#[A-Z][A-Z0-9_]*=/.test(l)).map((l) => l.slice(1));
  const nameOf = (l: string) => l.slice(0, l.indexOf('='));
  const envOf = (ls: string[]) => Object.fromEntries(ls.map((l) => [nameOf(l), l.slice(l.indexOf('=') + 1)]));

  it('holds only comments, blank lines and plain KEY=value assignments systemd and a shell read alike', () => {
    for (const [i, l] of lines.entries()) {
      expect(l === '' || l.startsWith('#') || /^[A-Z][A-Z0-9_]*=[^\s"'\\$`]*$/.test(l), `weft-agent.env:${i + 1}: ${l}`).toBe(true);
    }
    for (const l of examples) expect(l, l).toMatch(/^[A-Z][A-Z0-9_]*=[^\s"'\\$`]*$/);
  });

  it('names every variable the agent reads, and only those', () => {
    const named = new Set([...active, ...examples].map(nameOf));
    expect([...named].sort()).toEqual([...new Set([...AGENT_ENV_VARS, ...LOGGER_ENV])].sort());
  });

  it('starts an agent as it stands, and with any one example turned on', () => {
    const base = envOf(active);
    const opts = parseAgentFlags([], base) as AgentOptions;
    expect(opts.etcd.endpoints.length).toBeGreaterThan(0);
    expect(opts.ipMasq).toBe(true);
    // Variables that only make sense together.
    const partners: Record<string, string[]> = {
      FLANNELD_ETCD_CERTFILE: ['FLANNELD_ETCD_KEYFILE'],
      FLANNELD_ETCD_KEYFILE: ['FLANNELD_ETCD_CERTFILE'],
      WEFT_ETCD_PASSWORD_FILE: ['FLANNELD_ETCD_USERNAME'],
      FLANNELD_ETCD_PASSWORD: ['FLANNELD_ETCD_USERNAME'],
    };
    const exampleEnv = envOf(examples);
    for (const line of examples) {
      const name = nameOf(line);
      const env = { ...base, ...envOf([line]), ...Object.fromEntries((partners[name] ?? []).map((p) => [p, exampleEnv[p]!])) };
      expect(() => parseAgentFlags([], env, () => 'secret\n'), line).not.toThrow();
    }
  });

  it('keeps the subnet file where the unit lets the agent write', () => {
    const example = envOf(examples).FLANNELD_SUBNET_FILE;
    expect(example).toBe(defaults.subnetFile);
  });
});

describe('10-weft.conflist', () => {
  const conf = JSON.parse(read('10-weft.conflist')) as Record<string, unknown> & { plugins: Record<string, unknown>[] };

  it('is a CNI 1.0.0 list: the flannel plugin on weft\'s subnet.env, then portmap', () => {
    expect(Object.keys(conf).sort()).toEqual(['cniVersion', 'name', 'plugins']);
    expect(conf.cniVersion).toBe('1.0.0');
    expect(conf.name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/); // CNI's rule for network names
    expect(conf.plugins.map((p) => p.type)).toEqual(['flannel', 'portmap']);
    const [flannel, portmap] = conf.plugins as [Record<string, unknown>, Record<string, unknown>];
    expect(flannel.subnetFile).toBe(defaults.subnetFile);
    expect(flannel.delegate).toEqual({ hairpinMode: true, isDefaultGateway: true });
    expect(portmap.capabilities).toEqual({ portMappings: true });
  });
});

describe('docker-weft.conf (Docker drop-in)', () => {
  const { entries, problems } = parseUnitFile(read('docker-weft.conf'), 'docker-weft.conf');

  it('starts Docker after the agent with the options mk-docker-opts.sh writes', () => {
    expect(problems).toEqual([]);
    expect(valuesOf(entries, 'Unit', 'After')).toContain('weft-agent.service');
    const pre = valueOf(entries, 'Service', 'ExecStartPre')!.split(' ');
    expect(pre[0]!.endsWith('/mk-docker-opts.sh')).toBe(true);
    const key = pre[pre.indexOf('-k') + 1]!;
    const out = pre[pre.indexOf('-d') + 1]!;
    expect(valueOf(entries, 'Service', 'EnvironmentFile')).toBe(out);
    // ExecStart is reset, then set once, with the variable unquoted so it splits into flags.
    expect(entries.filter((e) => e.key === 'ExecStart').map((e) => e.value)[0]).toBe('');
    expect(valuesOf(entries, 'Service', 'ExecStart')).toHaveLength(1);
    expect(valueOf(entries, 'Service', 'ExecStart')).toMatch(new RegExp(` \\$${key}$`));
  });
});

const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
// Only where systemd-analyze exists (the strict parse above runs everywhere); not a skip.
if (analyze) describe('with systemd-analyze', () => {
  it('verifies the agent unit and the Docker drop-in without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-units-'));
    try {
      // Programs that do not exist here are replaced by ones that do; nothing else changes.
      writeFileSync(join(dir, 'weft-agent.service'), read('weft-agent.service').replaceAll('/usr/local/bin/weft', join(REPO, 'bin/weft')));
      // A stand-in unit named so that the machine's own docker.service drop-ins stay out of it.
      writeFileSync(join(dir, 'weft-test-docker.service'), '[Unit]\nDescription=stand-in for docker.service\n[Service]\nExecStart=/bin/true\n');
      mkdirSync(join(dir, 'weft-test-docker.service.d'));
      writeFileSync(
        join(dir, 'weft-test-docker.service.d', 'weft.conf'),
        read('docker-weft.conf').replaceAll('/usr/local/libexec/weft/mk-docker-opts.sh', join(DEPLOY, 'mk-docker-opts.sh')).replaceAll('/usr/bin/dockerd', '/bin/true'),
      );
      const r = await execa(analyze!, ['verify', join(dir, 'weft-agent.service'), join(dir, 'weft-test-docker.service')], {
        reject: false,
        env: { SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: 'notice' },
      });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      // Warnings (unknown keys, bad values) go to stderr with exit status 0: there must be none.
      const ours = String(r.stderr).split('\n').filter((l) => l.includes(dir) || /weft/.test(l));
      expect(ours).toEqual([]);

      // systemd 252 and later score the sandbox offline; older ones lack the option.
      const sec = await execa(analyze!, ['security', '--offline=true', join(dir, 'weft-agent.service')], { reject: false });
      const score = /Overall exposure level for weft-agent\.service: ([\d.]+)/.exec(String(sec.stdout));
      if (sec.exitCode === 0) expect(Number(score?.[1])).toBeLessThanOrEqual(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('bin/weft', () => {
  it("gives node the agent's GC flag and malloc settings on its first line, where npm's bin link, the unit and the testbed all find them", async () => {
    const first = readFileSync(WEFT_BIN, 'utf8').split('\n', 1)[0]!;
    expect(first).toMatch(/^#!\/usr\/bin\/env -S GLIBC_TUNABLES=\S+ node /);
    expect(first.length).toBeLessThan(256); // the kernel reads no more of a #! line (BINPRM_BUF_SIZE)
    expect(nodeFlagsOf(WEFT_BIN)).toEqual(['--single-threaded-gc']);
    expect(nodeEnvOf(WEFT_BIN)).toEqual({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=131072:glibc.malloc.mmap_threshold=131072' });
    // Run as an executable (the shebang, as `npm install -g` and ExecStart=/usr/local/bin/weft do).
    const r = await execa(WEFT_BIN, ['--version'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/^weft /);
  });

  it("gives the testbed's agents a host's environment: PATH, weft's and flanneld's variables, bin's own, and nothing else of the caller's", () => {
    const caller = {
      PATH: '/usr/sbin:/usr/bin',
      WEFT_LOG_LEVEL: 'debug',
      FLANNELD_IFACE: 'eth9',
      NODE_EXTRA_CA_CERTS: '/etc/ssl/certs/ca-certificates.crt',
      NODE_OPTIONS: '--inspect',
      HOME: '/root',
    };
    expect(agentEnvOf(WEFT_BIN, { WEFT_AGENT_CODE_CACHE: 'report', FLANNELD_IFACE: 'eth0' }, caller)).toEqual({
      PATH: '/usr/sbin:/usr/bin',
      WEFT_LOG_LEVEL: 'debug',
      FLANNELD_IFACE: 'eth0',
      GLIBC_TUNABLES: nodeEnvOf(WEFT_BIN).GLIBC_TUNABLES,
      WEFT_AGENT_CODE_CACHE: 'report',
    });
  });
});
