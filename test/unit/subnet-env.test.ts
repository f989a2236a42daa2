import { mkdtempSync, readFileSync, rmSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { waitFor } from '../helpers/wait.js';
import { formatSubnetEnv, readPreviousSubnets, writeSubnetEnv } from '../../src/agent/subnet-env.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('subnet.env', () => {
  it("matches flannel's bytes and line order", () => {
    const text = formatSubnetEnv({ network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.72.0/24')!, mtu: 1450, ipMasq: false });
    expect(text).toBe('FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
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
