// The agent programs its peers before its lease is written (agent.ts programBeforeLease): the
// first acquisition's plan names the own subnet of a first pass that runs while the
// transaction is in flight. Proved here against a real etcd and a real kernel (an in-process
// agent whose backend programs a test namespace) in the case that matters: the transaction
// loses its race for the planned subnet, the agent takes another, and the kernel converges
// around the subnet actually held, with the competitor's lease routed like any peer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { parseAgentFlags, type AgentOptions } from '../../src/agent/flags.js';
import type { RuleSyncer } from '../../src/agent/host-config.js';
import type { HostSnapshot } from '../../src/agent/iface.js';
import { Ipv4 } from '../../src/alloc/cidr.js';
import { createBackend } from '../../src/dataplane/index.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { useHosts } from './fixture.js';

const fx = useEtcd('before-lease');
const host = useHosts();

/** eth0 as the fixture makes it (192.0.2.1/24), as the agent's interface selection sees it. */
const HOST: HostSnapshot = {
  links: [{ name: 'eth0', index: 2, mtu: 1500, up: true, addresses: [{ ip: Ipv4.parse('192.0.2.1')!, prefixLength: 24 }], addresses6: [] }],
  defaultRouteDev: 'eth0',
};

/** No iptables: this process runs in the machine's own namespace. */
const noRules: RuleSyncer = { sync: async () => [] };

const lease = (n: number, node: string) =>
  JSON.stringify({ PublicIP: `192.0.2.${n}`, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}` }, NodeName: node });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('peers programmed before the lease is ours', () => {
  it('converges around the subnet it gets when the planned one is taken between the listing and the write', async () => {
    const h = await host('before-lease');
    const prefix = `/before-lease-${process.pid}/network`;
    await fx.admin.client.put(`${prefix}/config`).value('{"Network":"10.5.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}');
    const peers = [10, 11, 12, 13, 14, 15];
    for (const n of peers) await fx.admin.client.put(`${prefix}/subnets/10.5.${n}.0-24`).value(lease(n, `peer${n}`));
    // The previous subnet.env names 10.5.7.0/24, free in etcd: the plan is to take it again.
    const dir = mkdtempSync(join(tmpdir(), 'weft-before-lease-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const subnetFile = join(dir, 'subnet.env');
    writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');

    const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
    cleanups.push(() => store.close());
    // Another host takes 10.5.7.0/24 right after the agent's first listing: the agent plans it
    // from that listing, programs its peers around it, and its create transaction loses.
    const list = store.listSubnets.bind(store);
    let lists = 0;
    store.listSubnets = async (network) => {
      const listing = await list(network);
      if (++lists === 1) await fx.admin.client.put(`${prefix}/subnets/10.5.7.0-24`).value(lease(70, 'competitor'));
      return listing;
    };

    const logs: Record<string, unknown>[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l) as Record<string, unknown>) });
    const options = parseAgentFlags(
      ['--etcd-endpoints', fx.etcd.endpoint, '--etcd-prefix', prefix, '--node-name', 'h1', '--iface', 'eth0', '--subnet-file', subnetFile],
      {},
    ) as AgentOptions;
    const addresses = async () => ((await h.link('flannel.1'))?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    const provisional: { own: string; addresses: string[] }[] = [];
    const agent = new Agent({
      options,
      store,
      logger,
      rules: noRules,
      readHost: async () => HOST,
      createBackend: (settings, sel) => {
        const b = createBackend(settings, sel.uplink!, sel.publicIP!, h.ns.runner, logger);
        // The device's addresses as each provisional pass leaves them.
        const update = b.update.bind(b);
        b.update = async (ownSubnet, delta, opts) => {
          const report = await update(ownSubnet, delta, opts);
          if (opts?.provisional) provisional.push({ own: ownSubnet.toString(), addresses: await addresses() });
          return report;
        };
        return b;
      },
    });
    const run = agent.run();
    cleanups.push(async () => {
      await agent.stop();
      await run.catch(() => {});
    });
    await waitFor(async () => agent.ready().ok, { timeoutMs: 15_000, what: 'the agent to be ready' });

    // The first pass ran around the planned subnet, before the lease, without giving the
    // device the planned subnet's address.
    const early = logs.find((l) => l.msg === 'programming the peers before the lease is ours');
    expect(early?.planned).toBe(`${prefix}/subnets/10.5.7.0-24`);
    expect(provisional[0]).toEqual({ own: '10.5.7.0/24', addresses: [] });
    const acquired = logs.find((l) => l.msg === 'lease acquired');
    const own = String(acquired?.subnet);
    expect(own).not.toBe('10.5.7.0/24');
    expect(logs.some((l) => l.msg === 'the planned subnet went to another host first; the peers are programmed again around ours')).toBe(true);

    // The kernel: every peer, the competitor on 10.5.7.0/24 included, and nothing for our own subnet.
    const all = [...peers, 7].map((n) => ({ n, mac: `02:00:00:00:00:${(n === 7 ? 70 : n).toString(16).padStart(2, '0')}`, ip: `192.0.2.${n === 7 ? 70 : n}` }));
    await waitFor(async () => (await h.routes('flannel.1')).length === all.length, { timeoutMs: 5000, what: 'the competitor routed' });
    expect(await h.routes('flannel.1')).toEqual(all.map(({ n }) => `10.5.${n}.0/24 via 10.5.${n}.0 proto 119 onlink`).sort());
    expect(await h.neighs('flannel.1')).toEqual(all.map(({ n, mac }) => `10.5.${n}.0 ${mac} PERMANENT`).sort());
    expect(await h.fdb('flannel.1')).toEqual(all.map(({ mac, ip }) => `${mac} ${ip} permanent`).sort());
    // The device's only IPv4 address is the subnet held, never the planned one.
    expect(await addresses()).toEqual([`${own.split('/')[0]}/32`]);
  });
});
