// One reading of the etcd connection flags for the agent and the CLI.
import { describe, expect, it } from 'vitest';
import { weft } from '../helpers/cli.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdFlagError, parseEtcdFlags, PasswordFileError, weftEtcdConnection, type EtcdFlag } from '../../src/store/etcd-flags.js';

const from = (flags: Partial<Record<EtcdFlag, string>>) => (flag: EtcdFlag) => flags[flag];
const noFile = (): string => {
  throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
};

describe('etcd connection flags', () => {
  it('of weft and weft serve: flags first, then $WEFT_ETCD_ENDPOINTS, and $WEFT_ETCD_PASSWORD only without a password file', () => {
    const env = { WEFT_ETCD_ENDPOINTS: 'http://10.0.0.1:2379', WEFT_ETCD_PASSWORD: 'from-env' };
    expect(weftEtcdConnection({ 'etcd-username': 'u' }, env).etcd).toMatchObject({ endpoints: ['http://10.0.0.1:2379'], username: 'u', password: 'from-env' });
    expect(weftEtcdConnection({ 'etcd-endpoints': 'http://10.0.0.2:2379', 'etcd-username': 'u' }, env).etcd.endpoints).toEqual(['http://10.0.0.2:2379']);
    expect(() => weftEtcdConnection({}, env)).toThrow(/--etcd-password needs --etcd-username/);
    const dir = mkdtempSync(join(tmpdir(), 'weft-etcd-flags-'));
    try {
      const file = join(dir, 'pw');
      writeFileSync(file, 'from-file\n');
      expect(weftEtcdConnection({ 'etcd-username': 'u', 'etcd-password-file': file }, env).etcd.password).toBe('from-file');
      expect(() => weftEtcdConnection({ 'etcd-username': 'u', 'etcd-password-file': join(dir, 'missing') }, env)).toThrow(PasswordFileError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('defaults to the local endpoint and flannel prefix, and reads a password file without its newline', () => {
    expect(parseEtcdFlags(from({}), noFile)).toEqual({ etcd: { endpoints: ['http://127.0.0.1:2379'] }, prefix: '/coreos.com/network' });
    const c = parseEtcdFlags(from({ 'etcd-username': 'u', 'etcd-password-file': '/pw' }), () => 's3cret\n');
    expect(c.etcd).toMatchObject({ username: 'u', password: 's3cret' });
  });

  it.each<[Partial<Record<EtcdFlag, string>>, RegExp]>([
    [{ 'etcd-endpoints': ' , ' }, /--etcd-endpoints is empty/],
    [{ 'etcd-endpoints': 'ftp://x:1' }, /is not an http\(s\):\/\/host:port URL/],
    [{ 'etcd-username': 'u', 'etcd-password': 'p', 'etcd-password-file': '/pw' }, /mutually exclusive/],
    [{ 'etcd-password': 'p' }, /needs --etcd-username/],
    [{ 'etcd-certfile': '/c' }, /must be given together/],
  ])('refuses %j', (flags, message) => {
    expect(() => parseEtcdFlags(from(flags), noFile)).toThrow(EtcdFlagError);
    expect(() => parseEtcdFlags(from(flags), noFile)).toThrow(message);
  });

  it('reports an unreadable password file as such, not as a crash', () => {
    expect(() => parseEtcdFlags(from({ 'etcd-username': 'u', 'etcd-password-file': '/nonexistent' }), noFile)).toThrow(PasswordFileError);
  });

  it('the CLI prints error: and exits 2 for an unreadable password file, and refuses a bad endpoint like the agent', async () => {
    const r = await weft(['get', 'networks', '--etcd-username', 'u', '--etcd-password-file', '/nonexistent/pw']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('error: --etcd-password-file: cannot read /nonexistent/pw: ENOENT\n');
    const bad = await weft(['get', 'networks', '--etcd-endpoints', 'etcd:2379']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('error: --etcd-endpoints: "etcd:2379" is not an http(s)://host:port URL\n');
  });
});
