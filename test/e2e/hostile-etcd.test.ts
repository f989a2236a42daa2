// Hostile values and keys under <prefix>/subnets, counted: written with etcdctl next to valid
// flannel-format peer leases, each is ignored with exactly one log line naming its key (also
// across periodic resyncs and an agent restart), the agents stay up, every valid peer stays
// programmed, and nothing else reaches the kernel.
import { describe, expect, it } from 'vitest';
import { ipIn } from '../../src/testbed/netns.js';
import { poll } from '../../src/testbed/poll.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { agentRuns, applyYaml, currentRunLog, findLogs, kernelState, linkMac, logEntries, type LogEntry, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';
const SUBNETS = `${PREFIX}/subnets/`;
const AGENT_ARGS = ['--resync-interval', '2s'];

// Agents allocate only from 10.5.1.0..10.5.9.0, so no hostile key below can land on a real
// host's lease; peers anywhere in 10.5.0.0/16 are still routed.
const NETWORK = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: default
spec:
  cidr: 10.5.0.0/16
  subnetLength: 24
  subnetMin: 10.5.1.0
  subnetMax: 10.5.9.0
  backend:
    type: vxlan
`;

const lease = (ip: string, mac: string, extra = '') =>
  `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}${extra}}`;

/** Peers with no real host behind them, in flanneld's exact bytes. */
const VALID = [
  { key: '10.5.10.0-24', ip: '192.0.2.110', mac: '02:00:00:00:01:10' },
  { key: '10.5.11.0-24', ip: '192.0.2.111', mac: '02:00:00:00:01:11' },
  { key: '10.5.12.0-24', ip: '192.0.2.112', mac: '02:00:00:00:01:12' },
];

interface Hostile {
  what: string;
  /** The key's last segment; may itself be malformed. */
  name: string;
  value: string;
  /**
   * Bad only from this host's point of view; the other host may route it like any peer
   * (a lease naming h1's public IP is, to h2, a plausible peer).
   */
  onlyOn?: string;
}

const H1_SUBNET = '10.5.1.0/24';

const HOSTILE: Hostile[] = [
  { what: 'not JSON', name: '10.5.20.0-24', value: 'not json at all' },
  { what: 'a JSON array', name: '10.5.21.0-24', value: '[1,2,3]' },
  { what: 'JSON null', name: '10.5.22.0-24', value: 'null' },
  { what: 'PublicIP is a number', name: '10.5.23.0-24', value: lease('192.0.2.50', '02:00:00:00:02:23').replace('"192.0.2.50"', '3221225522') },
  { what: 'newline injection in PublicIP', name: '10.5.24.0-24', value: lease('192.0.2.51\\nroute add default via 192.0.2.51', '02:00:00:00:02:24') },
  { what: 'space injection in PublicIP', name: '10.5.25.0-24', value: lease('192.0.2.52 dev eth0', '02:00:00:00:02:25') },
  { what: 'newline injection in VtepMAC', name: '10.5.26.0-24', value: lease('192.0.2.53', '02:00:00:00:02:26\\nneigh flush all') },
  { what: 'space injection in VtepMAC', name: '10.5.27.0-24', value: lease('192.0.2.54', '02:00:00:00:02:27 nud reachable') },
  { what: 'IPv6 where IPv4 belongs', name: '10.5.28.0-24', value: lease('fd00::1', '02:00:00:00:02:28') },
  { what: 'negative VNI', name: '10.5.29.0-24', value: lease('192.0.2.56', '02:00:00:00:02:29').replace('"VNI":1', '"VNI":-1') },
  { what: 'VNI of 2^32', name: '10.5.30.0-24', value: lease('192.0.2.57', '02:00:00:00:02:30').replace('"VNI":1', '"VNI":4294967296') },
  { what: 'a 1 MB value', name: '10.5.31.0-24', value: lease('192.0.2.58', '02:00:00:00:02:31', `,"Pad":"${'x'.repeat(1024 * 1024)}"`) },
  { what: 'unicode (fullwidth digits) in PublicIP', name: '10.5.32.0-24', value: lease('１９２.０.２.５９', '02:00:00:00:02:32') },
  { what: 'a raw NUL byte in PublicIP', name: '10.5.33.0-24', value: lease('192.0.2.60\u0000', '02:00:00:00:02:33') },
  { what: 'a multicast VtepMAC', name: '10.5.34.0-24', value: lease('192.0.2.61', '01:00:5e:00:00:01') },
  { what: 'vxlan without BackendData', name: '10.5.35.0-24', value: '{"PublicIP":"192.0.2.62","PublicIPv6":null,"BackendType":"vxlan"}' },
  { what: 'a key that does not parse', name: 'garbage', value: lease('192.0.2.63', '02:00:00:00:02:36') },
  { what: 'a key with a path under it', name: '10.5.9.0-24/x', value: lease('192.0.2.64', '02:00:00:00:02:37') },
  { what: 'a key with prefix /33', name: '10.5.38.0-33', value: lease('192.0.2.65', '02:00:00:00:02:38') },
  { what: 'a key with octet 300', name: '300.5.39.0-24', value: lease('192.0.2.66', '02:00:00:00:02:39') },
  { what: 'a key with host bits', name: '10.5.40.1-24', value: lease('192.0.2.67', '02:00:00:00:02:40') },
  { what: 'a key with a newline', name: '10.5.41.0-24\nx', value: lease('192.0.2.68', '02:00:00:00:02:41') },
  { what: "a lease overlapping h1's own subnet", name: '10.5.1.128-25', value: lease('192.0.2.69', '02:00:00:00:02:42') },
  { what: 'a lease for the whole network', name: '10.5.0.0-16', value: lease('192.0.2.70', '02:00:00:00:02:43') },
  { what: 'a default-route lease', name: '0.0.0.0-0', value: lease('192.0.2.71', '02:00:00:00:02:44') },
  { what: 'a lease outside the network', name: '10.99.1.0-24', value: lease('192.0.2.72', '02:00:00:00:02:45') },
  { what: "a lease with h1's own PublicIP", name: '10.5.46.0-24', value: lease('192.0.2.1', '02:00:00:00:02:46'), onlyOn: 'h1' },
  { what: "a lease reusing a valid peer's VtepMAC", name: '10.5.47.0-24', value: lease('192.0.2.74', VALID[0]!.mac) },
  // The peer screen (issue 14): each was an FDB destination on main, spraying that subnet's
  // traffic to every host on the segment (or to this host itself).
  { what: 'a multicast PublicIP', name: '10.5.50.0-24', value: lease('224.0.0.1', '02:00:00:00:02:50') },
  { what: 'the limited broadcast as PublicIP', name: '10.5.51.0-24', value: lease('255.255.255.255', '02:00:00:00:02:51') },
  { what: "the underlay subnet's broadcast as PublicIP", name: '10.5.52.0-24', value: lease('192.0.2.255', '02:00:00:00:02:52') },
  { what: 'PublicIP 0.0.0.0 on a vxlan lease', name: '10.5.53.0-24', value: lease('0.0.0.0', '02:00:00:00:02:53') },
  { what: 'a loopback PublicIP', name: '10.5.54.0-24', value: lease('127.0.0.1', '02:00:00:00:02:54') },
  { what: 'the metadata service (link-local) as PublicIP', name: '10.5.55.0-24', value: lease('169.254.169.254', '02:00:00:00:02:55') },
  { what: 'a reserved (240/4) PublicIP', name: '10.5.56.0-24', value: lease('240.0.0.1', '02:00:00:00:02:56') },
  { what: 'a /32 key in a /24 network', name: '10.5.57.7-32', value: lease('192.0.2.77', '02:00:00:00:02:57') },
];

let tb: Testbed;

/** Every warning or error of one agent run with a `key` field, by that key's value. */
function keyLines(log: string): Map<string, LogEntry[]> {
  const out = new Map<string, LogEntry[]>();
  for (const e of logEntries(log)) {
    // Warnings only: a valid peer's "peer added" (info) is not a complaint about it.
    if (typeof e.key !== 'string' || (e.level !== 'warn' && e.level !== 'error')) continue;
    out.set(e.key, [...(out.get(e.key) ?? []), e]);
  }
  return out;
}

/** Lines about a hostile entry: logged by its full key or by its last segment. */
function linesFor(lines: Map<string, LogEntry[]>, h: Hostile): LogEntry[] {
  return [...(lines.get(SUBNETS + h.name) ?? []), ...(lines.get(h.name) ?? [])];
}

async function put(key: string, value: string): Promise<void> {
  // Through stdin: values can be 1 MB or hold a NUL, which argv cannot carry.
  const r = await tb.etcdctl(['put', key], { input: value });
  expect(r.exitCode, `etcdctl put ${JSON.stringify(key)}: ${r.stderr}`).toBe(0);
}

/** Every IPv4 route in every table that is not on flannel.1: what hostile leases must not touch. */
async function otherRoutes(host: Host): Promise<string[]> {
  const r = await ipIn(host.ns, ['-4', '-json', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(r.stdout) as Record<string, unknown>[];
  return routes.filter((x) => x.dev !== 'flannel.1').map((x) => JSON.stringify(x)).sort();
}

/** What flannel.1 on `host` must hold: the valid fake peers plus the real other host. */
async function expectedFlannelState(host: Host, other: Host, hostileWritten: boolean) {
  const env = tb.readSubnetEnv(other)!;
  const mac = await linkMac(other, 'flannel.1');
  const plausible = HOSTILE.filter((h) => hostileWritten && h.onlyOn !== undefined && h.onlyOn !== host.name).map((h) => {
    const v = JSON.parse(h.value) as { PublicIP: string; BackendData: { VtepMAC: string } };
    return { key: h.name, ip: v.PublicIP, mac: v.BackendData.VtepMAC };
  });
  const peers = [...VALID, ...plausible].map((p) => ({ subnet: p.key.replace('-', '/'), ip: p.ip, mac: p.mac }));
  peers.push({ subnet: env.subnet.toString(), ip: other.ip, mac: mac! });
  return {
    routes: peers.map((p) => `${p.subnet} via ${p.subnet.split('/')[0]}`).sort(),
    neighbours: peers.map((p) => `${p.subnet.split('/')[0]} ${p.mac}`).sort(),
    fdb: peers.map((p) => `${p.mac} ${p.ip}`).sort(),
  };
}

const resyncs = (host: Host) => findLogs(currentRunLog(tb, host), 'resync done', { level: 'debug' }).length;

/** Waits for `count` more periodic resyncs of the host's current agent run. */
async function waitResyncs(host: Host, count: number): Promise<void> {
  const target = resyncs(host) + count;
  await poll(() => resyncs(host) >= target, { timeoutMs: 15_000, what: `${count} resyncs on ${host.name}` });
}

testbedFor((created) => (tb = created), {
  setup: async () => {
    process.env.WEFT_LOG_LEVEL = 'debug'; // agents log each periodic resync, which the test waits for
    await applyYaml(tb, 'network', NETWORK);
    // h1's subnet is a reservation, so "overlapping h1's own subnet" is a fixed key.
    await put(`${SUBNETS}10.5.1.0-24`, '{"PublicIP":"0.0.0.0","PublicIPv6":null,"NodeName":"h1"}');
    const grant = await tb.etcdctl(['lease', 'grant', '3600']);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
    expect(id, grant.stdout + grant.stderr).toBeDefined();
    for (const p of VALID) {
      const r = await tb.etcdctl(['put', `--lease=${id}`, SUBNETS + p.key, lease(p.ip, p.mac)]);
      expect(r.exitCode, r.stderr).toBe(0);
    }
    for (const i of [1, 2]) {
      const host = await tb.addHost(i);
      tb.startAgent(host, AGENT_ARGS);
    }
    for (const h of tb.hosts.values()) {
      await tb.waitForSubnetEnv(h);
      await tb.addContainer(h);
    }
    expect(tb.readSubnetEnv(tb.host(1))!.subnet.toString()).toBe(H1_SUBNET);
  },
});

describe('hostile leases in etcd', () => {
  it(`ignores each of ${HOSTILE.length} hostile keys and values with one log line, keeping every valid peer programmed`, async () => {
    expect(HOSTILE.length).toBeGreaterThanOrEqual(20);
    const [h1, h2] = [tb.host(1), tb.host(2)];
    const hosts: [Host, Host][] = [[h1, h2], [h2, h1]];
    for (const [host, other] of hosts) {
      const want = await expectedFlannelState(host, other, false);
      await poll(async () => JSON.stringify(await kernelState(host)) === JSON.stringify(want), { timeoutMs: 15_000, what: `${host.name} to program its peers` });
    }
    await tb.waitReachable(h1.containers[0]!, h2.containers[0]!.ip);
    const routesBefore = new Map([[h1, await otherRoutes(h1)], [h2, await otherRoutes(h2)]]);

    for (const h of HOSTILE) await put(SUBNETS + h.name, h.value);

    /** Checks one agent run's log, the kernel and the process, for both hosts. */
    const verify = async (label: string) => {
      for (const [host, other] of hosts) {
        const bad = HOSTILE.filter((h) => h.onlyOn === undefined || h.onlyOn === host.name);
        const unlogged = () => bad.filter((h) => linesFor(keyLines(currentRunLog(tb, host)), h).length === 0);
        await poll(() => unlogged().length === 0, { timeoutMs: 15_000, what: `${host.name} to log every hostile entry (${label})` }).catch(async (err: Error) => {
          throw new Error(`${err.message}; never logged: ${unlogged().map((h) => h.what).join('; ')}; flannel.1: ${JSON.stringify(await kernelState(host))}`);
        });
        await waitResyncs(host, 2);
        const lines = keyLines(currentRunLog(tb, host));
        const counts = HOSTILE.map((h) => `${h.what}: ${linesFor(lines, h).length}`);
        expect(counts, `${host.name} (${label}): log lines per hostile entry`).toEqual(HOSTILE.map((h) => `${h.what}: ${bad.includes(h) ? 1 : 0}`));
        for (const p of VALID) expect(lines.get(p.key) ?? [], `${host.name}: a valid peer was logged`).toEqual([]);
        expect(host.agent!.status, `${host.name} agent exited`).toBeUndefined();
        expect(await kernelState(host)).toEqual(await expectedFlannelState(host, other, true));
        expect(await otherRoutes(host), `${host.name}: routes off flannel.1 changed`).toEqual(routesBefore.get(host));
        const onDevice = await ipIn(host.ns, ['-json', 'route', 'show', 'dev', 'flannel.1']);
        for (const r of JSON.parse(onDevice.stdout) as { dst: string }[]) expect(r.dst).toMatch(/^10\.5\.\d+\.0\/24$/);
      }
      await tb.waitReachable(h1.containers[0]!, h2.containers[0]!.ip);
    };
    await verify('hostile entries arriving on the watch');

    // A restart lists them all at once (the list path rather than watch events).
    await tb.stopAgent(h1);
    const runs = agentRuns(tb, h1).length;
    tb.startAgent(h1, AGENT_ARGS);
    await poll(() => agentRuns(tb, h1).length > runs && findLogs(currentRunLog(tb, h1), 'ready').length > 0, { timeoutMs: 20_000, what: 'h1 to restart and be ready' });
    expect(tb.readSubnetEnv(h1)!.subnet.toString()).toBe(H1_SUBNET);
    await verify('hostile entries present at start');

    console.log(`hostile etcd: ${HOSTILE.length} hostile keys/values ignored with one log line each on 2 agents, arriving by watch and by list (restart), 2 resyncs per host after each; ${VALID.length + 1} valid peers stayed programmed`);
  });

  it('over netlink (the default channel), never replaces or deletes a route weft did not create, and marks its device as its own', async () => {
    const h1 = tb.host(1);
    expect(findLogs(currentRunLog(tb, h1), 'kernel channel: netlink').length, 'h1 programs the kernel over netlink').toBe(1);
    const ip = async (args: string[]) => {
      const r = await ipIn(h1.ns, args);
      expect(r.exitCode, `ip ${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    const route = async (dst: string) =>
      (JSON.parse(await ip(['-4', '-json', 'route', 'show', 'table', 'main', 'exact', dst])) as { dev?: string; protocol?: string }[]).map((r) => `${r.dev} ${r.protocol ?? 'boot'}`);
    const conflicts = (key: string) => findLogs(currentRunLog(tb, h1), 'not routing to peer').filter((e) => e.key === key);

    // The device carries weft's owner mark (IFLA_IFALIAS, written over netlink).
    const link = JSON.parse(await ip(['-details', '-json', 'link', 'show', 'dev', 'flannel.1'])) as { ifalias?: string }[];
    expect(link[0]?.ifalias).toBe('weft:default');

    // An operator's route to a subnet a lease then names: left as it is, reported once.
    await ip(['route', 'add', '10.5.13.0/24', 'dev', 'eth0', 'proto', 'static']);
    await put(`${SUBNETS}10.5.13.0-24`, lease('192.0.2.113', '02:00:00:00:01:13'));
    await poll(() => conflicts('10.5.13.0-24').length > 0, { timeoutMs: 15_000, what: 'h1 to report the route it leaves alone' });
    await waitResyncs(h1, 2);
    expect(await route('10.5.13.0/24')).toEqual(['eth0 static']);
    expect(conflicts('10.5.13.0-24')).toHaveLength(1);
    expect(conflicts('10.5.13.0-24')[0]!.reason).toContain('a route to 10.5.13.0/24 that weft did not create holds it (dev eth0 proto 4)');
    // The lease's deletion does not take the operator's route with it.
    await tb.etcdctl(['del', `${SUBNETS}10.5.13.0-24`]);
    await waitResyncs(h1, 2);
    expect(await route('10.5.13.0/24')).toEqual(['eth0 static']);

    // An operator's route put over one of weft's (a kernel notification, then resyncs): never
    // "repaired" back; once the operator removes it, weft routes the peer again.
    expect(await route('10.5.10.0/24')).toEqual(['flannel.1 119']);
    await ip(['route', 'replace', '10.5.10.0/24', 'dev', 'eth0', 'proto', 'static']);
    await waitResyncs(h1, 2);
    expect(await route('10.5.10.0/24')).toEqual(['eth0 static']);
    expect(conflicts('10.5.10.0-24')).toHaveLength(1);
    await ip(['route', 'del', '10.5.10.0/24', 'dev', 'eth0', 'proto', 'static']);
    await poll(async () => JSON.stringify(await route('10.5.10.0/24')) === JSON.stringify(['flannel.1 119']), { timeoutMs: 15_000, what: 'weft to route 10.5.10.0/24 again' });
    await ip(['route', 'del', '10.5.13.0/24', 'dev', 'eth0', 'proto', 'static']);
    expect(h1.agent!.status, 'h1 agent exited').toBeUndefined();
  });
});
