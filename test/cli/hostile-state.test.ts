// Hostile state in etcd and careless manifests, against a real etcd (issue 14): each case
// was reproduced on main before its fix; docs/hostile-state.md lists them all.
import { describe, expect, it } from 'vitest';
import { cliEnv } from '../helpers/cli-env.js';
import { weft } from '../helpers/cli.js';
import { useEtcd } from '../helpers/etcd.js';

const API = 'apiVersion: weft.io/v1alpha1';

function network(name: string, spec: string): string {
  return `${API}\nkind: Network\nmetadata:\n  name: ${name}\nspec:\n${spec}`;
}

/** No terminal escape, bell or other control character left raw (newlines end lines only). */
function expectPrintable(text: string): void {
  // eslint-disable-next-line no-control-regex
  expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
}

describe('hostile state: output', () => {
  const fx = useEtcd();

  it('escapes control characters in every table cell and -o name line', async () => {
    const e = cliEnv(fx);
    const evil = '10.5.0.0/16\u001b[2J\u0007\nforged   line';
    await fx.admin.client.put(`${e.prefix}/config`).value(JSON.stringify({ Network: evil, Backend: { Type: 'vxlan' } }));
    await fx.admin.client.put(`${e.prefix}/subnets/10.5.3.0-24`).value('{"PublicIP":"0.0.0.0","PublicIPv6":null,"NodeName":"n\u001b]0;pwned\u0007\nx"}');
    await e.lease('/subnets/10.5.4.0-24\u001b[31m', '{"PublicIP":"192.0.2.4","PublicIPv6":null,"BackendType":"vxlan"}');
    for (const args of [
      ['get', 'networks'],
      ['get', 'networks', '-o', 'wide'],
      ['get', 'subnets', '-o', 'wide'],
      ['get', 'leases', '-o', 'wide'],
      ['get', 'leases', '-o', 'name'],
      ['get', 'subnets', '-o', 'name'],
    ]) {
      const r = await e.run(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expectPrintable(r.stdout);
      expectPrintable(r.stderr);
    }
    const wide = await e.run('get', 'networks', '-o', 'wide');
    expect(wide.stdout.split('\n').filter(Boolean)).toHaveLength(2);
    expect(wide.stdout).toContain('\\u001b[2J\\u0007\\u000aforged');
    expect((await e.run('get', 'leases', '-o', 'name')).stdout).toContain('lease.weft.io/10.5.4.0-24\\u001b[31m\n');
  });
});

describe('hostile state: credentials', () => {
  it('an unreadable --etcd-password-file is an error line and exit 2, not a stack trace', async () => {
    const r = await weft(['get', 'networks', '--etcd-endpoints', 'http://127.0.0.1:1', '--etcd-username', 'u', '--etcd-password-file', '/nonexistent/weft-password']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: cannot read --etcd-password-file \/nonexistent\/weft-password: ENOENT[^\n]*\n$/);
    expect(r.stdout).toBe('');
  });
});
