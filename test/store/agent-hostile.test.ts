// The agent against hostile state in a real etcd (issue 14), driven in this process with a
// recording backend: what reaches the dataplane is exactly the peers the agent hands it. The
// kernel side of the same rules is tested in test/kernel/hostile-routes.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { parseAgentFlags, type AgentOptions } from '../../src/agent/flags.js';
import type { HostSnapshot } from '../../src/agent/iface.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { createBackend } from '../../src/dataplane/index.js';
import type { Backend, Peer, PeerDelta, ReconcileReport } from '../../src/dataplane/types.js';
import { IpRunner } from '../../src/dataplane/ipcmd.js';
import { createLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { useEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const fx = useEtcd('agent-hostile');

const HOST: HostSnapshot = {
  links: [
    { name: 'lo', index: 1, mtu: 65536, up: true, addresses: [{ ip: Ipv4.parse('127.0.0.1')!, prefixLength: 8 }], addresses6: [] },
    {
      name: 'eth0',
      index: 2,
      mtu: 1500,
      up: true,
      addresses: [{ ip: Ipv4.parse('192.168.77.10')!, prefixLength: 24 }],
      addresses6: [{ ip: Ipv6.parse('2001:db8:77::10')!, prefixLength: 64 }],
    },
    { name: 'eth1', index: 3, mtu: 1500, up: true, addresses: [{ ip: Ipv4.parse('10.5.99.1')!, prefixLength: 32 }] },
  ],
  defaultRouteDev: 'eth0',
  defaultRouteDev6: 'eth0',
};

/** Keeps the peers the agent's deltas add up to; the kernel is never touched. */
class RecordingBackend implements Backend {
  private readonly current = new Map<string, Peer>();
  get peers(): Peer[] {
    return [...this.current.values()];
  }
  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    return { vtepMAC: '02:00:00:00:77:10', mtu: 1450 };
  }
  async update(_own: unknown, delta: PeerDelta): Promise<ReconcileReport> {
    for (const [key, peer] of delta) {
      if (peer) this.current.set(key, peer);
      else this.current.delete(key);
    }
    return { operations: 0, failures: 0, peersProgrammed: this.current.size };
  }
  async reconcile(own: unknown, peers: Peer[]): Promise<ReconcileReport> {
    const delta = new Map<string, Peer | undefined>(peers.map((p) => [p.key, p]));
    for (const key of this.current.keys()) if (!delta.has(key)) delta.set(key, undefined);
    return this.update(own, delta);
  }
}

/** A runner aimed at a namespace that does not exist: the backend's constructor picks iproute2 (no netlink socket, no watch on this host). */
const noKernel = new IpRunner({ netns: 'weft-agent-hostile-none' });

interface Running {
  agent: Agent;
  logs: Record<string, unknown>[];
  backends: Map<number, RecordingBackend>;
  metrics: AgentMetrics;
  /** Settles when run() does; `error` is set if it threw. */
  done: Promise<void>;
  error: unknown;
  prefix: string;
  close(): void;
}

const running: Running[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    // run() does not return when stopped while it waits for a config; stop() always does.
    await r.agent.stop();
    r.close();
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

let n = 0;
async function start(config: string, leases: Record<string, string>): Promise<Running> {
  const prefix = `/agent-hostile-${process.pid}-${++n}/network`;
  await fx.admin.client.put(`${prefix}/config`).value(config);
  for (const [key, value] of Object.entries(leases)) await fx.admin.client.put(`${prefix}/subnets/${key}`).value(value);
  const dir = mkdtempSync(join(tmpdir(), 'weft-agent-hostile-'));
  dirs.push(dir);
  const options = parseAgentFlags(
    ['--etcd-endpoints', fx.etcd.endpoint, '--etcd-prefix', prefix, '--node-name', 'h1', '--subnet-file', join(dir, 'subnet.env'), '--resync-interval', '1s'],
    {},
  ) as AgentOptions;
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', write: (l) => logs.push(JSON.parse(l) as Record<string, unknown>) });
  const store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix });
  const backends = new Map<number, RecordingBackend>();
  const metrics = new AgentMetrics({ processMetrics: false });
  const agent = new Agent({
    options,
    store,
    logger,
    metrics,
    readHost: async () => HOST,
    createBackend: (settings, sel) => {
      // The real backend's own checks (device name, MTU) run, without its kernel work.
      const ipv6 = settings.family === 6;
      createBackend(settings, ipv6 ? sel.uplink6! : sel.uplink!, ipv6 ? sel.publicIPv6! : sel.publicIP!, noKernel, logger);
      const b = new RecordingBackend();
      backends.set(settings.family ?? 4, b);
      return b;
    },
  });
  const r: Running = { agent, logs, backends, metrics, prefix, error: undefined, done: Promise.resolve(), close: () => store.close() };
  r.done = agent.run().catch((err: unknown) => void (r.error = err));
  running.push(r);
  return r;
}

const DUAL = '{"Network":"10.5.0.0/16","SubnetLen":24,"SubnetMin":"10.5.1.0","SubnetMax":"10.5.1.0","EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":64,"IPv6SubnetMin":"fd00:5:0:1::","IPv6SubnetMax":"fd00:5:0:1::","Backend":{"Type":"vxlan","VNI":1}}';

/** A dual-stack lease of peer n (subnets 10.5.n.0/24 and fd00:5:0:n::/64). */
function dual(n: number, publicIP: string, publicIPv6: string): [string, string] {
  return [
    `10.5.${n}.0-24&fd00:5:0:${n.toString(16)}::-64`,
    JSON.stringify({
      PublicIP: publicIP,
      PublicIPv6: publicIPv6,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: `02:00:00:00:04:${n.toString(16).padStart(2, '0')}` },
      BackendV6Data: { VNI: 1, VtepMAC: `02:00:00:00:06:${n.toString(16).padStart(2, '0')}` },
    }),
  ];
}

const screenedLines = (r: Running) => r.logs.filter((l) => l.msg === 'ignoring unsafe lease');

describe('agent: peer screen', () => {
  it('leaves out leases whose public IP is special, the uplink broadcast or IPv4-mapped, or whose prefix is not the subnet length; once each', async () => {
    const leases = Object.fromEntries([
      dual(10, '192.168.77.20', '2001:db8:77::20'), // a good peer
      dual(11, '224.0.0.1', '2001:db8:77::21'),
      dual(12, '255.255.255.255', '2001:db8:77::22'),
      dual(13, '192.168.77.255', '2001:db8:77::23'), // the uplink's broadcast
      dual(14, '0.0.0.0', '2001:db8:77::24'),
      dual(15, '127.0.0.1', '2001:db8:77::25'),
      dual(16, '169.254.169.254', '2001:db8:77::26'),
      dual(17, '192.168.77.27', '::ffff:7f00:1'), // IPv4-mapped loopback
      dual(18, '192.168.77.28', '::ffff:e000:1'), // IPv4-mapped multicast
      ['10.5.19.7-32&fd00:5:0:13::-64', dual(19, '192.168.77.29', '2001:db8:77::29')[1]], // a /32 in a /24 network
      ['10.5.99.0-24&fd00:5:0:63::-64', dual(99, '192.168.77.30', '2001:db8:77::30')[1]], // holds eth1's 10.5.99.1
    ]);
    const r = await start(DUAL, leases);
    await waitFor(() => r.agent.ready().ok && r.backends.get(4)?.peers.length && r.backends.get(6)?.peers.length, { what: 'a converged agent' });
    const keys = (f: number) => r.backends.get(f)!.peers.map((p) => p.key).sort();
    expect(keys(4)).toEqual(['10.5.10.0-24&fd00:5:0:a::-64', '10.5.17.0-24&fd00:5:0:11::-64', '10.5.18.0-24&fd00:5:0:12::-64']);
    // Their IPv6 halves are fine, except the IPv4-mapped public IPv6 of 17 and 18.
    expect(keys(6)).toHaveLength(9);
    expect(keys(6).filter((k) => /^10\.5\.1[78]\./.test(k))).toEqual([]);
    // Resyncs come and go; each unsafe lease was logged once per family it fails in.
    await waitFor(() => r.logs.filter((l) => l.msg === 'resync done').length >= 2, { what: 'two resyncs' });
    const lines = screenedLines(r);
    const byKey = (k: string) => lines.filter((l) => String(l.key).endsWith(`/subnets/${k}`));
    for (const n of [11, 12, 13, 14, 15, 16]) {
      expect(byKey(dual(n, '', '')[0]).map((l) => [l.family, l.reason]), `lease ${n}`).toEqual([[4, 'public-ip']]);
    }
    expect(byKey(dual(13, '', '')[0])[0]!.detail).toBe("public IP 192.168.77.255 is the broadcast address of eth0's network 192.168.77.0/24");
    expect(byKey(dual(17, '', '')[0]).map((l) => [l.family, l.reason, l.detail])).toEqual([[6, 'public-ip', 'public IP ::ffff:7f00:1 is in the IPv4-mapped range ::ffff:0:0/96']]);
    expect(byKey(dual(18, '', '')[0]).map((l) => [l.family, l.reason])).toEqual([[6, 'public-ip']]);
    expect(byKey('10.5.19.7-32&fd00:5:0:13::-64').map((l) => [l.family, l.reason])).toEqual([[4, 'prefix-length']]);
    expect(byKey('10.5.99.0-24&fd00:5:0:63::-64').map((l) => [l.family, l.reason, l.detail])).toEqual([[4, 'local-address', 'subnet 10.5.99.0/24 holds 10.5.99.1, an address of this host']]);
    const text = await r.metrics.render();
    expect(text).toMatch(/^weft_peers_screened\{family="4",reason="public-ip"\} 6$/m);
    expect(text).toMatch(/^weft_peers_screened\{family="6",reason="public-ip"\} 2$/m);
    expect(text).toMatch(/^weft_peers_screened\{family="4",reason="prefix-length"\} 1$/m);
  });

  it('leaves out peer subnets in the uplink\'s network, and warns that the network overlaps it', async () => {
    const lease = (ip: string) => `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:05:01"}}`;
    const r = await start('{"Network":"192.168.0.0/16","SubnetLen":24,"SubnetMin":"192.168.1.0","SubnetMax":"192.168.1.0","Backend":{"Type":"vxlan"}}', {
      '192.168.77.0-24': lease('192.168.77.30'),
      '192.168.5.0-24': lease('192.168.77.31'),
    });
    await waitFor(() => r.agent.ready().ok && r.backends.get(4)?.peers.length, { what: 'a converged agent' });
    expect(r.backends.get(4)!.peers.map((p) => p.key)).toEqual(['192.168.5.0-24']);
    expect(screenedLines(r).map((l) => [l.reason, l.detail])).toEqual([['uplink-network', "subnet 192.168.77.0/24 overlaps 192.168.77.0/24, the network of this host's uplink eth0"]]);
    expect(r.logs.filter((l) => /overlaps the uplink's network/.test(String(l.msg))).map((l) => l.reason)).toEqual([
      "192.168.0.0/16 overlaps 192.168.77.0/24, the network of this host's interface eth0 (192.168.77.10/24); peer routes would take over the host's underlay",
    ]);
  });
});

describe('agent: stored configs weft refuses', () => {
  for (const [what, config, why] of [
    ['a dual-stack VNI whose IPv6 device name is too long', DUAL.replace('"VNI":1', '"VNI":123456'), /flannel-v6\.123456, longer than the kernel's 15 characters/],
    ['a network over the default route', '{"Network":"0.0.0.0/0","Backend":{"Type":"vxlan","VNI":9}}', /0\.0\.0\.0\/0 is shorter than \/8/],
  ] as const) {
    it(`waits, not ready, saying why, on ${what}; logged once with the key`, async () => {
      const r = await start(config, { '128.0.0.0-1': '{"PublicIP":"192.168.77.40","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":9,"VtepMAC":"02:00:00:00:05:02"}}' });
      await waitFor(() => r.logs.some((l) => /is refused/.test(String(l.msg))) || r.error, { what: 'the refusal' });
      expect(r.error).toBeUndefined();
      const ready = r.agent.ready();
      expect(ready.ok).toBe(false);
      expect(ready.reason).toMatch(why);
      const refused = r.logs.filter((l) => /is refused/.test(String(l.msg)));
      expect(refused).toHaveLength(1);
      expect(refused[0]!.msg).toContain(`${r.prefix}/config`);
      expect(r.backends.size).toBe(0);
    });
  }
});

describe('agent: our key forged under our node name', () => {
  it('backs off, re-checks and takes its lease back instead of exiting', async () => {
    const r = await start('{"Network":"10.5.0.0/16","SubnetLen":24,"SubnetMin":"10.5.1.0","SubnetMax":"10.5.1.0","Backend":{"Type":"vxlan","VNI":1}}', {});
    await waitFor(() => r.agent.ready().ok, { what: 'a ready agent' });
    const key = `${r.prefix}/subnets/10.5.1.0-24`;
    const ours = (await fx.admin.client.get(key).string())!;
    expect(JSON.parse(ours)).toMatchObject({ PublicIP: '192.168.77.10', NodeName: 'h1' });
    await fx.admin.client.put(key).value(ours.replace('192.168.77.10', '192.168.77.66'));
    await waitFor(() => r.logs.some((l) => /took over our lease/.test(String(l.msg))) || r.error, { what: 'the takeover to be noticed' });
    await waitFor(async () => (await fx.admin.client.get(key).string()) === ours || r.error, { timeoutMs: 15_000, what: 'the lease taken back' });
    expect(r.error).toBeUndefined();
    expect(r.logs.find((l) => /took over our lease/.test(String(l.msg)))).toMatchObject({ level: 'warn', takerPublicIP: '192.168.77.66' });
  });
});
