// examples/deploy/mk-docker-opts.sh: exact Docker options from a subnet.env, under every POSIX
// shell this machine has, and hostile files refused without running anything from them.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { formatSubnetEnv } from '../../src/agent/subnet-env.js';

const SCRIPT = new URL('../../examples/deploy/mk-docker-opts.sh', import.meta.url).pathname;

// The file as weft writes it (and flanneld): the fixture every case starts from.
const FIXTURE = 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

/** The shells to run the script with: /bin/sh always, and every other POSIX shell found (once each). */
const shells = (() => {
  const seen = new Set<string>();
  return [
    { name: 'sh', argv: ['sh'] },
    { name: 'dash', argv: ['dash'] },
    { name: 'bash --posix', argv: ['bash', '--posix'] },
    { name: 'busybox sh', argv: ['busybox', 'sh'] },
  ].filter((s) => {
    const found = ['/bin/', '/usr/bin/'].map((d) => d + s.argv[0]).find((p) => existsSync(p));
    const real = found && s.argv[0] !== 'busybox' ? realpathSync(found) : found;
    if (!real || seen.has(real)) return false;
    seen.add(real);
    return true;
  });
})();

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'weft-docker-opts-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.each(shells)('mk-docker-opts.sh under $name', ({ argv }) => {
  const run = async (args: string[], opts: { env?: string | Buffer } = {}) => {
    const file = join(dir, 'subnet.env');
    if (opts.env !== undefined) writeFileSync(file, opts.env);
    const r = await execa(argv[0]!, [...argv.slice(1), SCRIPT, ...args], { reject: false, cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, extendEnv: false });
    return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
  const fromFixture = (args: string[], env = FIXTURE) => run(['-f', join(dir, 'subnet.env'), '-d', '-', ...args], { env });

  it("writes flannel's variables: --bip, --ip-masq=false when the agent masquerades, --mtu", async () => {
    expect(await fromFixture([])).toEqual({
      code: 0,
      stdout: [
        'DOCKER_OPT_BIP="--bip=10.5.72.1/24"',
        'DOCKER_OPT_IPMASQ="--ip-masq=false"',
        'DOCKER_OPT_MTU="--mtu=1450"',
        'DOCKER_OPTS="--bip=10.5.72.1/24 --ip-masq=false --mtu=1450"',
      ].join('\n'),
      stderr: '',
    });
    // Docker keeps its own masquerading when the agent does not.
    expect((await fromFixture([], FIXTURE.replace('IPMASQ=true', 'IPMASQ=false'))).stdout).toBe(
      ['DOCKER_OPT_BIP="--bip=10.5.72.1/24"', 'DOCKER_OPT_IPMASQ=""', 'DOCKER_OPT_MTU="--mtu=1450"', 'DOCKER_OPTS="--bip=10.5.72.1/24 --mtu=1450"'].join('\n'),
    );
  });

  it('honours -c, -k, -i and -m', async () => {
    expect((await fromFixture(['-c', '-k', 'DOCKER_NETWORK_OPTIONS'])).stdout).toBe('DOCKER_NETWORK_OPTIONS="--bip=10.5.72.1/24 --ip-masq=false --mtu=1450"');
    expect((await fromFixture(['-i'])).stdout).toBe('DOCKER_OPT_BIP="--bip=10.5.72.1/24"\nDOCKER_OPT_IPMASQ="--ip-masq=false"\nDOCKER_OPT_MTU="--mtu=1450"');
    expect((await fromFixture(['-c', '-m'])).stdout).toBe('DOCKER_OPTS="--bip=10.5.72.1/24 --mtu=1450"');
  });

  it("reads what weft's own writer produces, and lines a newer agent may add", async () => {
    const written = formatSubnetEnv({ network: Cidr.parse('10.7.0.0/16')!, subnet: Cidr.parse('10.7.3.0/24')!, mtu: 8950, ipMasq: false });
    expect((await fromFixture(['-c'], written)).stdout).toBe('DOCKER_OPTS="--bip=10.7.3.1/24 --mtu=8950"');
    const newer = `${FIXTURE}FLANNEL_IPV6_NETWORK=fd00:5::/56\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\nWEFT_SOMETHING_NEW=1\n\n# a comment\n`;
    expect((await fromFixture(['-c'], newer)).stdout).toBe('DOCKER_OPTS="--bip=10.5.72.1/24 --ip-masq=false --mtu=1450"');
  });

  it('replaces the output file atomically, mode 0644, leaving no temporary file', async () => {
    const out = join(dir, 'docker_opts.env');
    writeFileSync(out, 'OLD=1\n', { mode: 0o600 });
    const r = await run(['-f', join(dir, 'subnet.env'), '-d', out, '-c'], { env: FIXTURE });
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(readFileSync(out, 'utf8')).toBe('DOCKER_OPTS="--bip=10.5.72.1/24 --ip-masq=false --mtu=1450"\n');
    expect(statSync(out).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir).sort()).toEqual(['docker_opts.env', 'subnet.env']);
  });

  it('waits for the file with -w, and fails without it', async () => {
    const file = join(dir, 'later.env');
    const missing = await run(['-f', file, '-d', '-']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`${file}: no such readable file`);
    const t0 = Date.now();
    expect((await run(['-f', file, '-d', '-', '-w', '1'])).code).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    // Written while the script runs (or before it looks: either way it must succeed).
    const waiting = run(['-f', file, '-d', '-', '-c', '-w', '10']);
    writeFileSync(file, FIXTURE);
    expect(await waiting).toMatchObject({ code: 0, stdout: 'DOCKER_OPTS="--bip=10.5.72.1/24 --ip-masq=false --mtu=1450"' });
  });

  it('rejects bad usage', async () => {
    expect((await run(['-h'])).code).toBe(0);
    expect((await run(['-x'])).code).toBe(2);
    expect((await run(['extra'])).code).toBe(2);
    expect((await fromFixture(['-w', 'soon'])).code).toBe(1);
    expect((await run(['-f', join(dir, 'subnet.env'), '-d', dir], { env: FIXTURE })).stderr).toContain('is a directory');
  });

  describe('hostile input: refused, nothing run, nothing written', () => {
    const canary = () => join(dir, 'CANARY');
    const victim = () => join(dir, 'victim');
    const subnet = (v: string) => FIXTURE.replace('FLANNEL_SUBNET=10.5.72.1/24', `FLANNEL_SUBNET=${v}`);
    const cases: [string, () => string | Buffer, RegExp][] = [
      ['a command after the MTU', () => FIXTURE.replace('FLANNEL_MTU=1450', `FLANNEL_MTU=1450; rm -rf ${victim()}`), /:3: FLANNEL_MTU is not a number/],
      ['command substitution', () => subnet(`$(touch ${canary()})`), /:2: FLANNEL_SUBNET is not an IPv4/],
      ['backquotes', () => subnet(`\`touch ${canary()}\``), /:2: FLANNEL_SUBNET is not an IPv4/],
      ['an extra Docker flag', () => subnet('10.5.72.1/24 --insecure-registry=0.0.0.0/0'), /:2: FLANNEL_SUBNET/],
      ['quotes', () => subnet('"10.5.72.1/24"'), /:2: FLANNEL_SUBNET/],
      ['a carriage return', () => subnet('10.5.72.1/24\r'), /:2: FLANNEL_SUBNET/],
      ['a NUL byte', () => Buffer.from(subnet(`10.5.72.1/24\0; touch ${canary()}`)), /contains NUL bytes/],
      ['a terminal escape', () => subnet('\x1b]0;owned\x07'), /:2: FLANNEL_SUBNET/],
      ['leading zeros', () => subnet('010.5.72.1/24'), /FLANNEL_SUBNET/],
      ['an octet over 255', () => subnet('10.5.256.1/24'), /FLANNEL_SUBNET/],
      ['a prefix over 32', () => subnet('10.5.72.1/33'), /FLANNEL_SUBNET/],
      ['three octets', () => subnet('10.5.72/24'), /FLANNEL_SUBNET/],
      ['five octets', () => subnet('10.5.72.1.1/24'), /FLANNEL_SUBNET/],
      ['no prefix', () => subnet('10.5.72.1'), /FLANNEL_SUBNET/],
      ['a glob', () => subnet('*/24'), /FLANNEL_SUBNET/],
      ['an MTU of 0', () => FIXTURE.replace('MTU=1450', 'MTU=0'), /FLANNEL_MTU/],
      ['an MTU over 65535', () => FIXTURE.replace('MTU=1450', 'MTU=99999'), /FLANNEL_MTU/],
      ['a negative MTU', () => FIXTURE.replace('MTU=1450', 'MTU=-1'), /FLANNEL_MTU/],
      ['an empty MTU', () => FIXTURE.replace('MTU=1450', 'MTU='), /FLANNEL_MTU/],
      ['IPMASQ not a boolean', () => FIXTURE.replace('IPMASQ=true', `IPMASQ=true; touch ${canary()}`), /:4: FLANNEL_IPMASQ is not true or false/],
      ['a bad network', () => FIXTURE.replace('NETWORK=10.5.0.0/16', `NETWORK=$(touch ${canary()})`), /:1: FLANNEL_NETWORK/],
      ['a bad IPv6 line', () => `${FIXTURE}FLANNEL_IPV6_SUBNET=fd00::/64;touch ${canary()}\n`, /:5: FLANNEL_IPV6_SUBNET/],
      ['a duplicate subnet', () => `${FIXTURE}FLANNEL_SUBNET=10.5.73.1/24\n`, /:5: FLANNEL_SUBNET given twice/],
      ['a line that is a command', () => `touch ${canary()}\n${FIXTURE}`, /:1: not a KEY=VALUE line/],
      ['export', () => `export ${FIXTURE}`, /:1: not a variable name/],
      ['a lower-case name', () => `flannel_x=1\n${FIXTURE}`, /:1: not a variable name/],
      ['no subnet', () => FIXTURE.replace('FLANNEL_SUBNET=10.5.72.1/24\n', ''), /no FLANNEL_SUBNET/],
      ['no MTU', () => FIXTURE.replace('FLANNEL_MTU=1450\n', ''), /no FLANNEL_MTU/],
    ];

    it.each(cases)('%s', async (_, content, message) => {
      mkdirSync(victim());
      const out = join(dir, 'docker_opts.env');
      writeFileSync(out, 'KEEP=1\n');
      const r = await run(['-f', join(dir, 'subnet.env'), '-d', out], { env: content() });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f]/); // no value is echoed
      expect(existsSync(canary())).toBe(false);
      expect(existsSync(victim())).toBe(true);
      expect(readFileSync(out, 'utf8')).toBe('KEEP=1\n');
      expect(readdirSync(dir).sort()).toEqual(['docker_opts.env', 'subnet.env', 'victim']);
    });

    it('refuses a -k that is not a variable name', async () => {
      for (const key of [`X;touch ${canary()}`, `$(touch ${canary()})`, '1ABC', '']) {
        const r = await fromFixture(['-k', key]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr).toContain('-k: not a variable name');
      }
      expect(existsSync(canary())).toBe(false);
    });
  });
});
