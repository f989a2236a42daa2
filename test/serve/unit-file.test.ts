// examples/deploy/weft-serve.service: strictly parsed everywhere, verified by
// `systemd-analyze verify` where it exists (as test/deploy does for the agent's unit), and
// its command line accepted by weft serve's own flag parser.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { runServeCommand } from '../../src/serve/main.js';
import { REPO } from '../helpers/cli.js';
import { parseUnitFile, valueOf, valuesOf } from '../deploy/unit-file.js';

const text = readFileSync(join(REPO, 'examples', 'deploy', 'weft-serve.service'), 'utf8');

describe('weft-serve.service', () => {
  const { entries, problems } = parseUnitFile(text, 'weft-serve.service');

  it('is a well-formed unit that runs weft serve, restarting always, with no capabilities', () => {
    expect(problems).toEqual([]);
    expect(valuesOf(entries, 'Service', 'ExecStart')).toEqual(['/usr/local/bin/weft serve --write-kubeconfig=/run/weft-serve/kubeconfig $WEFT_SERVE_FLAGS']);
    expect(valueOf(entries, 'Service', 'Restart')).toBe('always');
    expect(valuesOf(entries, 'Service', 'CapabilityBoundingSet')).toEqual([]);
    expect(entries.some((e) => e.key === 'CapabilityBoundingSet' && e.value === '')).toBe(true);
    expect(valueOf(entries, 'Service', 'RuntimeDirectory')).toBe('weft-serve');
    expect(valueOf(entries, 'Service', 'RuntimeDirectoryMode')).toBe('0700');
    expect(valueOf(entries, 'Install', 'WantedBy')).toBe('multi-user.target');
  });

  it('passes weft serve flags its parser accepts', async () => {
    const exec = valueOf(entries, 'Service', 'ExecStart')!.split(/\s+/).slice(2).filter((w) => !w.startsWith('$'));
    const documented = /WEFT_SERVE_FLAGS=(.*)\n#\s+(.*)\n#\s+(.*)\n/.exec(text)!.slice(1).join(' ').split(/\s+/);
    let out = '';
    let err = '';
    const code = await runServeCommand([...exec, ...documented, '--help'], { stdout: (s) => (out += s), stderr: (s) => (err += s), env: {} });
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('Usage: weft serve');
  });
});

const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
// Only where systemd-analyze exists (the strict parse above runs everywhere); not a skip.
if (analyze) describe('weft-serve.service with systemd-analyze', () => {
  it('verifies without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-serve-unit-'));
    try {
      writeFileSync(join(dir, 'weft-serve.service'), text.replaceAll('/usr/local/bin/weft', join(REPO, 'bin/weft')));
      const r = await execa(analyze!, ['verify', join(dir, 'weft-serve.service')], {
        reject: false,
        env: { SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: 'notice' },
      });
      expect(r.exitCode, String(r.stderr)).toBe(0);
      expect(String(r.stderr).split('\n').filter((l) => l.includes(dir) || /weft/.test(l))).toEqual([]);
      const sec = await execa(analyze!, ['security', '--offline=true', join(dir, 'weft-serve.service')], { reject: false });
      const score = /Overall exposure level for weft-serve\.service: ([\d.]+)/.exec(String(sec.stdout));
      if (sec.exitCode === 0) expect(Number(score?.[1])).toBeLessThanOrEqual(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
