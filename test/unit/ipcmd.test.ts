// The iproute2 runner's process handling (ipcmd.ts): input on stdin, output and exit status
// back, a command that cannot start reported rather than thrown. Nothing here changes the
// kernel: the batch lines are not commands `ip` knows, and `-V` only prints the version.
import { describe, expect, it } from 'vitest';
import { IpRunner, parseBatchOutcome, type Tool } from '../../src/dataplane/ipcmd.js';

describe('the iproute2 runner', () => {
  it('feeds stdin, and returns stdout, stderr and the exit status', async () => {
    const runner = new IpRunner();
    const version = await runner.run('ip', ['-V']);
    expect(version.exitCode).toBe(0);
    expect(version.stdout).toMatch(/iproute2/);
    const r = await runner.run('ip', ['-force', '-batch', '-'], 'weft-not-a-command one\nweft-not-a-command two\n');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Command failed -:1\n[\s\S]*Command failed -:2/);
    expect(parseBatchOutcome(r, 2).ok).toEqual([false, false]);
    expect(runner.runs).toBe(2);
  });

  it('reports a command that cannot start as exit -1 with the reason, without throwing', async () => {
    const r = await new IpRunner().run('weft-no-such-tool' as Tool, []);
    expect(r.exitCode).toBe(-1);
    expect(r.stderr).toMatch(/ENOENT/);
  });
});
