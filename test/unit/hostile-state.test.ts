// Hostile state, unit level (issue 14): log lines and subnet.env's temporary file.
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeSubnetEnv } from '../../src/agent/subnet-env.js';
import { createLogger } from '../../src/log.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('text logs', () => {
  it('escape C0, C1 and bidi characters from a lease key, bare or quoted', () => {
    const lines: string[] = [];
    const log = createLogger({ format: 'text', write: (l) => lines.push(l) });
    log.warn('ignoring unusable lease', { key: '10.5.1.0-24\u001b[2J\u0085\u202e', other: 'a b\u009b31m' });
    log.warn('msg \u001b]0;x\u0007 \u202e', {});
    expect(lines).toHaveLength(2);
    for (const l of lines) expect(l).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(lines[0]).toContain('\\u001b[2J\\u0085\\u202e');
    expect(lines[0]).toContain('\\u009b31m');
  });
});

describe('subnet.env', () => {
  it('never writes through a symlink planted at a temporary name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-env-'));
    dirs.push(dir);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    // The names main used: .subnet.env.<pid>.tmp
    symlinkSync(victim, join(dir, `.subnet.env.${process.pid}.tmp`));
    const path = join(dir, 'subnet.env');
    expect(writeSubnetEnv(path, 'FLANNEL_MTU=1450\n')).toBe(true);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(path, 'utf8')).toBe('FLANNEL_MTU=1450\n');
    // Nothing of ours left behind; the planted link is the attacker's, left as it was.
    expect(readdirSync(dir).sort()).toEqual([`.subnet.env.${process.pid}.tmp`, 'subnet.env', 'victim'].sort());
  });
});
