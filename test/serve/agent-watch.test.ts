// End to end: the real `weft serve` process (its flags, its kubeconfig) beside etcd in a
// testbed, and `kubectl get leases -w` seeing the lease a real agent acquires on a new host;
// then `kubectl get leases -o wide` shows that host READY, as `weft get leases -o wide` does.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import { startServeIn, type ServeInNamespace } from '../../src/testbed/serve.js';
import { Testbed } from '../../src/testbed/topology.js';
import { applyYaml, joinHost, networkYaml } from '../e2e/helpers.js';
import { KUBECTL, requireKubectl } from '../helpers/kubectl.js';

let tb: Testbed;
let serve: ServeInNamespace | undefined;

beforeAll(async () => {
  requireKubectl();
  tb = await Testbed.create();
  await applyYaml(tb, 'network', networkYaml());
  serve = await startServeIn(tb.underlay, tb.etcdFlags(), tb.workDir, { kubectl: KUBECTL, extraArgs: ['--log-level', 'debug'] });
});
afterAll(async () => {
  await serve?.stop();
  await tb?.teardown();
});

describe('kubectl get leases -w against weft serve', () => {
  it('shows the lease an agent acquires, then the host READY in -o wide', async () => {
    const watch = serve!.startKubectl(['get', 'leases', '-w', '-o', 'wide', '--output-watch-events']);
    try {
      // The watch is open (weft serve logs each request at debug level) before the host joins,
      // so the lease reaches kubectl through the watch, not through its first list.
      await poll(() => /"verb":"watch","resource":"leases"/.test(readFileSync(serve!.logPath, 'utf8')) || undefined, { timeoutMs: 10_000, what: 'kubectl to open its watch' });
      const { host } = await joinHost(tb, 1);
      const subnet = tb.readSubnetEnv(host)!.subnet;
      const row = new RegExp(`^ADDED\\s+${subnet.toKey().replace(/\./g, '\\.')}\\s+${host.name}\\s+${host.ip.replace(/\./g, '\\.')}\\s+vxlan\\s+[0-9a-f:]{17}\\s`, 'm');
      await poll(() => row.test(watch.output()) || undefined, { timeoutMs: 15_000, what: `ADDED ${subnet.toKey()} in the watch:\n${watch.output()}` });
      // The lease itself does not change when its agent reports ready, but its -o wide row does.
      const ready = new RegExp(`^MODIFIED\\s+${subnet.toKey().replace(/\./g, '\\.')}\\s.*\\syes\\s+0/0\\s`, 'm');
      await poll(() => ready.test(watch.output()) || undefined, { timeoutMs: 20_000, what: `MODIFIED ${subnet.toKey()} READY in the watch:\n${watch.output()}` });
    } finally {
      watch.stop();
    }
    const wide = await poll(
      async () => {
        const r = await serve!.kubectl(['get', 'leases', '-o', 'wide']);
        return r.exitCode === 0 && /\syes\s+0\/0\s/.test(r.stdout) ? r.stdout : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: 'h1 READY in kubectl get leases -o wide' },
    );
    expect(wide.split('\n')[0]!.split(/\s+/)).toEqual(['NAME', 'NODE', 'PUBLIC-IP', 'BACKEND', 'VTEP-MAC', 'AGE', 'EXPIRES', 'VNI', 'SUBNET', 'READY', 'PEERS', 'LAST-SYNC', 'VERSION']);
  });

  it('stops on SIGTERM with exit 0', async () => {
    const s = serve!;
    serve = undefined;
    expect(await s.stop()).toBe(0);
  });
});
