// The real `node bin/weft` process: exit codes, stdout vs stderr, help, and failing fast
// when etcd is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEtcd, type EtcdServer } from '../helpers/etcd.js';
import { REPO, testPrefix, weftProcess } from '../helpers/cli.js';

describe('bin/weft', () => {
  let etcd: EtcdServer;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('exits 2 within a few seconds, naming the endpoints, when etcd is unreachable', async () => {
    const port = await freePort();
    const endpoints = `http://127.0.0.1:${port},http://127.0.0.1:${port}`;
    const started = Date.now();
    const r = await weftProcess(['get', 'networks', '--etcd-endpoints', endpoints]);
    const took = Date.now() - started;
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^error: etcd is unreachable \\(tried http://127\\.0\\.0\\.1:${port}, http://127\\.0\\.0\\.1:${port}\\)`));
    expect(took).toBeLessThan(5000);
    const apply = await weftProcess(['apply', '-f', `${REPO}examples/network.yaml`], { env: { WEFT_ETCD_ENDPOINTS: `http://127.0.0.1:${port}` } });
    expect(apply.code).toBe(2);
    expect(apply.stderr).toContain(`tried http://127.0.0.1:${port}`);
  });

  it('applies from stdin with WEFT_ETCD_ENDPOINTS, data on stdout, errors on stderr', async () => {
    const prefix = testPrefix('proc');
    const env = { WEFT_ETCD_ENDPOINTS: etcd.endpoint };
    const ok = await weftProcess(['apply', '-f', '-', '--etcd-prefix', prefix], { env, stdin: await import('node:fs').then((fs) => fs.readFileSync(`${REPO}examples/network.yaml`, 'utf8')) });
    expect(ok).toEqual({ code: 0, stdout: 'network.weft.io/default created', stderr: '' });
    const got = await weftProcess(['get', 'networks', 'default', '-o', 'name', '--etcd-prefix', prefix], { env });
    expect(got).toEqual({ code: 0, stdout: 'network.weft.io/default', stderr: '' });
    const bad = await weftProcess(['apply', '-f', '-', '--etcd-prefix', prefix], { env, stdin: 'apiVersion: weft.io/v1alpha1\nkind: Network\nmetadata: {name: default}\nspec: {cidr: 10.5.0.0/16}\n' });
    expect(bad).toEqual({ code: 1, stdout: '', stderr: '<stdin>:4: network/default: spec.backend: is required' });
    const missing = await weftProcess(['apply', '-f', '/nonexistent/weft.yaml'], { env });
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'error: the path "/nonexistent/weft.yaml" does not exist' });
  });

  it('has --help on every command, a version, and exit 1 for usage errors', async () => {
    for (const cmd of [[], ['apply'], ['get'], ['delete'], ['diff'], ['version']]) {
      const r = await weftProcess([...cmd, '--help']);
      expect(r.code, cmd.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/^(weft: |Usage: weft)/);
      expect(r.stdout).toContain(cmd.length ? `weft ${cmd[0]}` : '--etcd-endpoints');
    }
    const version = await weftProcess(['version']);
    expect(version).toEqual({ code: 0, stdout: `weft ${JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(`${REPO}package.json`, 'utf8'))).version}`, stderr: '' });
    const unknown = await weftProcess(['frobnicate']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const badFlag = await weftProcess(['get', 'networks', '--recursive']);
    expect(badFlag).toMatchObject({ code: 1, stderr: `error: flag --recursive does not apply to "weft get"\nRun 'weft get --help' for usage.` });
    const noFile = await weftProcess(['apply']);
    expect(noFile).toMatchObject({ code: 1, stderr: 'error: -f FILE|DIR|- is required' });
  });
});
