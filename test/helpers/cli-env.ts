// A CLI bound to a fresh prefix of a test's etcd, with the few reads and writes CLI tests make
// around it (flanneld-style leases, the keys under the prefix).
import { etcdFlags, testPrefix, weft } from './cli.js';
import type { EtcdFixture } from './etcd.js';

export function cliEnv(fx: EtcdFixture, label?: string) {
  const prefix = testPrefix(label);
  const flags = etcdFlags(fx.etcd.endpoint, prefix);
  return {
    prefix,
    run: (...args: string[]) => weft([...args, ...flags]),
    /** The CLI with `stdin` on its standard input (for `-f -`). */
    pipe: (stdin: string, ...args: string[]) => weft([...args, ...flags], { stdin }),
    apply: (yaml: string, ...extra: string[]) => weft(['apply', '-f', '-', ...extra, ...flags], { stdin: yaml }),
    get: (key: string) => fx.admin.get(prefix + key),
    /** Keys under the prefix, without it. */
    keys: async () => (await fx.admin.list(prefix + '/')).kvs.map((kv) => kv.key.slice(prefix.length)),
    /** A flanneld-style lease: its own etcd lease, flannel's exact bytes. */
    lease: async (key: string, value: string, ttl = 3600) => {
      const l = fx.admin.client.lease(ttl, { autoKeepAlive: false });
      await l.put(`${prefix}${key}`).value(value);
      return l;
    },
  };
}
