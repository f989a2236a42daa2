import { mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Cidr, Cidr6 } from '../../src/alloc/cidr.js';
import { waitFor } from '../helpers/wait.js';
import { formatSubnetEnv, overlayMtu, readPreviousSubnets, writeSubnetEnv } from '../../src/agent/subnet-env.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('subnet.env', () => {
  it("matches flannel's bytes and line order", () => {
    const text = formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.72.0/24')!, mtu: 1450, ipMasq: false });
    expect(text).toBe('FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
  });

  // flanneld's bytes for a given config and lease (its WriteSubnetFile, v0.20 to v0.28; the
  // values also seen from a real flanneld v0.20.2 by `make interop`).
  it.each([
    ['IPv4-only vxlan, 1500 uplink', { type: 'vxlan' }, 1500, false, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n'],
    ['vxlan with Backend.MTU 9001 (the underlay\'s)', { type: 'vxlan', mtu: 9001 }, 9001, false, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=8951\nFLANNEL_IPMASQ=false\n'],
    ['host-gw', { type: 'host-gw' }, 1500, false, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n'],
    ['vxlan with --ip-masq', { type: 'vxlan' }, 1500, true, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n'],
  ] as const)("is flanneld's bytes: %s", (_name, backend, uplinkMtu, ipMasq, bytes) => {
    const mtu = overlayMtu(backend, uplinkMtu, 4);
    expect(formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.72.0/24')!, mtu, ipMasq })).toBe(bytes);
  });

  it('is written atomically with mode 0644, parents created, and rewritten only on change', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const path = join(dir, 'run', 'flannel', 'subnet.env');
    const old = process.umask(0o077);
    try {
      expect(writeSubnetEnv(path, 'A=1\n')).toBe(true);
    } finally {
      process.umask(old);
    }
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, 'run', 'flannel')).isDirectory()).toBe(true);
    const before = statSync(path).mtimeMs;
    expect(writeSubnetEnv(path, 'A=1\n')).toBe(false);
    expect(statSync(path).mtimeMs).toBe(before);
    expect(writeSubnetEnv(path, 'A=2\n')).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('A=2\n');
    expect(readdirSync(join(dir, 'run', 'flannel'))).toEqual(['subnet.env']); // no temp files left
  });

  it('is never seen half-written by a concurrent reader', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const path = join(dir, 'subnet.env');
    const a = formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.9.0/24')!, mtu: 1450, ipMasq: false });
    const b = formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.123.0/24')!, mtu: 8950, ipMasq: true }).repeat(50);
    writeSubnetEnv(path, a);
    // Another process reads as fast as it can while this one rewrites the file 2,000 times.
    const reader = spawn(process.execPath, [
      '-e',
      `const fs=require('fs');const ok=new Set([process.argv[2],process.argv[3]]);let reads=0,bad=0;` +
        `process.stdin.on('data',()=>{console.log(JSON.stringify({reads,bad}));process.exit(0)});` +
        `console.log('ready');(function loop(){for(let i=0;i<200;i++){reads++;if(!ok.has(fs.readFileSync(process.argv[1],'utf8')))bad++}setImmediate(loop)})()`,
      path,
      a,
      b,
    ]);
    let out = '';
    reader.stdout.on('data', (d) => (out += d));
    await waitFor(() => out.startsWith('ready\n'), { what: 'the reader to start' });
    for (let i = 0; i < 2000; i++) writeSubnetEnv(path, i % 2 ? a : b);
    reader.stdin.write('stop\n');
    await new Promise((r) => reader.once('exit', r));
    const { reads, bad } = JSON.parse(out.slice('ready\n'.length)) as { reads: number; bad: number };
    expect(reads).toBeGreaterThan(100);
    expect(bad).toBe(0);
  });

  it('reads the previous subnet back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const path = join(dir, 'subnet.env');
    expect(readPreviousSubnets(path)).toBeUndefined();
    writeSubnetEnv(path, formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.9.0/24')!, mtu: 1450, ipMasq: true }));
    expect(readPreviousSubnets(path)?.ipv4?.toString()).toBe('10.5.9.0/24');
    expect(readPreviousSubnets(path)?.ipv6).toBeUndefined();
  });
});

describe('subnet.env with IPv6', () => {
  const v4 = { network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.72.0/24')! };
  const v6 = { ipv6Network: Cidr6.parse('fd00:5::/48')!, ipv6Subnet: Cidr6.parse('fd00:5:0:34::/64')! };

  it("dual-stack: flannel's lines in flannel's order, the IPv6 subnet as its first address", () => {
    expect(formatSubnetEnv({ ...v4, ...v6, mtu: 1430, ipMasq: false })).toBe(
      'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\n' +
        'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\n' +
        'FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n',
    );
  });

  it('IPv6-only: no FLANNEL_NETWORK or FLANNEL_SUBNET', () => {
    expect(formatSubnetEnv({ ...v6, mtu: 1430, ipMasq: true })).toBe(
      'FLANNEL_IPV6_NETWORK=fd00:5::/48\nFLANNEL_IPV6_SUBNET=fd00:5:0:34::1/64\nFLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n',
    );
  });

  it('IPv4-only: unchanged, no IPv6 lines', () => {
    expect(formatSubnetEnv({ ...v4, mtu: 1450, ipMasq: false })).toBe('FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
  });

  it('FLANNEL_MTU: vxlan overhead 50 over IPv4, 70 over IPv6, off the configured (underlay) MTU or the uplink\'s; host-gw the uplink', () => {
    expect(overlayMtu({ type: 'vxlan' }, 1500, 4)).toBe(1450);
    expect(overlayMtu({ type: 'vxlan' }, 1500, 6)).toBe(1430);
    // flanneld's Backend.MTU is the underlay's: AWS jumbo frames (9001) give pods 8951.
    expect(overlayMtu({ type: 'vxlan', mtu: 9001 }, 9001, 4)).toBe(8951);
    expect(overlayMtu({ type: 'vxlan', mtu: 1400 }, 1500, 4)).toBe(1350);
    expect(overlayMtu({ type: 'vxlan', mtu: 1400 }, 1500, 6)).toBe(1330);
    expect(overlayMtu({ type: 'host-gw' }, 9000, 6)).toBe(9000);
    // The file carries the smaller of the two stacks' MTUs.
    expect(Math.min(overlayMtu({ type: 'vxlan' }, 1500, 4), overlayMtu({ type: 'vxlan' }, 1500, 6))).toBe(1430);
  });

  it('reads both previous subnets back, in each of the three forms', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const path = join(dir, 'subnet.env');
    const read = () => {
      const p = readPreviousSubnets(path);
      return [p?.ipv4?.toString(), p?.ipv6?.toString()];
    };
    writeSubnetEnv(path, formatSubnetEnv({ ...v4, ...v6, mtu: 1430, ipMasq: false }));
    expect(read()).toEqual(['10.5.72.0/24', 'fd00:5:0:34::/64']);
    writeSubnetEnv(path, formatSubnetEnv({ ...v6, mtu: 1430, ipMasq: false }));
    expect(read()).toEqual([undefined, 'fd00:5:0:34::/64']);
    writeSubnetEnv(path, formatSubnetEnv({ ...v4, mtu: 1450, ipMasq: false }));
    expect(read()).toEqual(['10.5.72.0/24', undefined]);
    // A hand-edited file with junk in it names nothing.
    writeSubnetEnv(path, 'FLANNEL_SUBNET=junk\nFLANNEL_IPV6_SUBNET=fd00::g/64\n');
    expect(readPreviousSubnets(path)).toBeUndefined();
  });
});
