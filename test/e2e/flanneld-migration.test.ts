// Moving a host from flanneld to weft in place, without a real flanneld: host 2 is set up by
// hand exactly as flanneld v0.20-v0.28 leaves it (its config written the way flanneld's
// operators write it, with the Learning option; the device with learning on, its MAC, MTU
// and /32; the neighbour, FDB entry and onlink route of its peer; its FLANNEL-FWD and
// FLANNEL-POSTRTG chains; its subnet.env; its lease with flanneld's value and a 24 h etcd
// lease). Then weft starts there under a 20 ms ping from a container of a weft host: no
// packet lost, same device MAC (learning now off), same lease key, same subnet.env bytes.
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { execIn, ipIn } from '../../src/testbed/netns.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { etcdKey, findLogs, kernelState, linkMac, subnetKeys, testbedFor, waitForRun } from './helpers.js';

const PREFIX = '/coreos.com/network';
/** As an operator writes it for flanneld (keys in flanneld's docs' case, Learning on). */
const CONFIG = '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Learning":true}}';
const SUBNET = '10.5.7.0';
const MAC = 'ce:0a:5e:77:00:02';
/** flanneld's subnet.env for this lease with --ip-masq (flannel-compat.md: order, no quotes). */
const FLANNELD_ENV = 'FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
/** flanneld's own words for the value of its lease (vxlan, IPv4). */
const flanneldLease = (publicIP: string) =>
  `{"PublicIP":"${publicIP}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${MAC}"}}`;

let tb: Testbed;

testbedFor((created) => (tb = created), {
  setup: async () => {
    process.env.WEFT_LOG_LEVEL = 'debug';
    const put = await tb.etcdctl(['put', `${PREFIX}/config`, CONFIG]);
    expect(put.exitCode, put.stderr).toBe(0);
  },
});

async function must(ns: string, cmd: string, args: string[], input?: string) {
  const r = await execIn(ns, cmd, args, input === undefined ? {} : { input });
  expect(r.exitCode, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/**
 * flanneld's lease for the host: its value, on an etcd lease of 24 h. Written before any weft
 * agent starts, so no agent can pick the same /24 at random first (1 in 255 runs did).
 */
async function claimAsFlanneld(host: Host) {
  const grant = await tb.etcdctl(['lease', 'grant', '86400']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
  expect(id, grant.stdout + grant.stderr).toBeDefined();
  const put = await tb.etcdctl(['put', `${PREFIX}/subnets/${SUBNET}-24`, flanneldLease(host.ip), '--lease', id!]);
  expect(put.exitCode, put.stderr).toBe(0);
}

/** Everything else flanneld v0.2x leaves on a host, written by hand. */
async function asFlanneldLeftIt(host: Host, peer: { subnet: string; mac: string; ip: string }) {
  // Its device (Learning: true), MTU 1500 - 50, the /32 of its subnet, up.
  await must(host.ns, 'ip', ['link', 'add', 'flannel.1', 'address', MAC, 'type', 'vxlan', 'id', '1', 'local', host.ip, 'dev', 'eth0', 'dstport', '8472', 'learning']);
  await must(host.ns, 'ip', ['link', 'set', 'flannel.1', 'mtu', '1450']);
  await must(host.ns, 'ip', ['addr', 'add', `${SUBNET}/32`, 'dev', 'flannel.1']);
  await must(host.ns, 'ip', ['link', 'set', 'flannel.1', 'up']);
  await must(host.ns, 'sysctl', ['-qw', 'net.ipv6.conf.flannel/1.accept_ra=0']);
  // Its peer: neighbour, FDB entry, then the onlink route (flanneld's order; protocol boot).
  const gw = peer.subnet.replace(/\/24$/, '');
  await must(host.ns, 'ip', ['neigh', 'replace', gw, 'lladdr', peer.mac, 'dev', 'flannel.1', 'nud', 'permanent']);
  await must(host.ns, 'bridge', ['fdb', 'append', peer.mac, 'dev', 'flannel.1', 'dst', peer.ip, 'self', 'permanent']);
  await must(host.ns, 'ip', ['route', 'replace', peer.subnet, 'via', gw, 'dev', 'flannel.1', 'onlink', 'proto', 'boot']);
  // Its iptables chains (--ip-masq, and the FORWARD rules it adds by default), on a host
  // whose FORWARD policy is DROP (as Docker leaves it).
  await must(host.ns, 'iptables-restore', ['-w', '--noflush'], [
    '*filter',
    ':FLANNEL-FWD - [0:0]',
    '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
    '-A FLANNEL-FWD -s 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    '-A FLANNEL-FWD -d 10.5.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    'COMMIT',
    '*nat',
    ':FLANNEL-POSTRTG - [0:0]',
    '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    `-A FLANNEL-POSTRTG -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG -s 10.5.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`,
    `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d ${SUBNET}/24 -m comment --comment "flanneld masq" -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`,
    'COMMIT',
    '',
  ].join('\n'));
  await must(host.ns, 'iptables', ['-w', '-P', 'FORWARD', 'DROP']);
  // Its subnet.env.
  writeFileSync(host.subnetFile, FLANNELD_ENV);
}

const iptablesSave = async (host: Host) => (await must(host.ns, 'iptables-save', [])).split('\n').filter((l) => l.startsWith('-A ')).sort();

describe('moving a host from flanneld to weft in place', () => {
  it('loses no packet under a 20 ms ping, keeps the MAC, the lease and the subnet.env bytes', async () => {
    // Host 2, as flanneld left it, needs its peer: host 1, a weft host, joins first.
    const h1 = await tb.addHost(1);
    const h2 = await tb.addHost(2);
    await claimAsFlanneld(h2);
    tb.startAgent(h1, ['--resync-interval', '2s', '--iptables-resync', '1']);
    const env1 = await tb.waitForSubnetEnv(h1);
    await asFlanneldLeftIt(h2, { subnet: env1.subnet.toString(), mac: (await linkMac(h1, 'flannel.1'))!, ip: h1.ip });
    const c1 = await tb.addContainer(h1);
    const c2 = await tb.addContainer(h2);
    // Host 1 learns host 2 from its (flanneld) lease; both ways work before weft starts on 2.
    await tb.waitReachable(c1, c2.ip, 15_000);
    await tb.waitReachable(c2, c1.ip, 5_000);
    const keysBefore = await subnetKeys(tb);
    const leaseBefore = (await etcdKey(tb, `${PREFIX}/subnets/${SUBNET}-24`))!;
    const flannelChains = (await iptablesSave(h2)).filter((l) => l.includes('FLANNEL-'));

    const pings = [tb.startPing(c1, c2.ip, 20), tb.startPing(c2, c1.ip, 20)];
    try {
      // flanneld's unit file, unchanged but for the binary (and the test's subnet file).
      tb.startAgent(h2, ['--ip-masq', '--resync-interval', '2s', '--iptables-resync', '1']);
      await waitForRun(tb, h2, 0, 'ready', 20_000);
      // A few resyncs under traffic: nothing they do may drop a packet either.
      await waitForRun(tb, h2, 0, /installed the FORWARD rules/, 10_000);
      await new Promise((r) => setTimeout(r, 3000)); // keep traffic flowing through two resync periods
    } finally {
      for (const ping of pings) {
        const result = await ping.stop();
        expect(result.lostSeqs).toEqual([]);
        expect(result.received).toBeGreaterThan(100);
      }
    }

    // The device was adopted in place: same MAC, learning off now.
    expect(await linkMac(h2, 'flannel.1')).toBe(MAC);
    const link = JSON.parse(String((await ipIn(h2.ns, ['-d', '-json', 'link', 'show', 'flannel.1'])).stdout))[0];
    expect(link.linkinfo.info_data.learning).toBe(false);
    expect(findLogs(tb.agentLog(h2), /replacing incompatible vxlan device/)).toEqual([]);
    // Same lease key, same subnet, still on an etcd lease; flanneld's value with weft's node name.
    expect(await subnetKeys(tb)).toEqual(keysBefore);
    const leaseAfter = (await etcdKey(tb, `${PREFIX}/subnets/${SUBNET}-24`))!;
    expect(leaseAfter.value).toBe(flanneldLease(h2.ip).replace(/}$/, ',"NodeName":"h2"}'));
    expect(leaseAfter.lease).not.toBe(0);
    expect(leaseBefore.lease).not.toBe(0);
    // subnet.env: the same bytes flanneld wrote.
    expect(readFileSync(h2.subnetFile, 'utf8')).toBe(FLANNELD_ENV);
    // flanneld's chains are left as they were; weft's own sit beside them.
    const after = await iptablesSave(h2);
    expect(after.filter((l) => l.includes('FLANNEL-'))).toEqual(flannelChains);
    expect(after.filter((l) => l.includes('WEFT-FWD')).length).toBe(3);
    expect(after.filter((l) => l.includes('WEFT-POSTRTG')).length).toBe(7);
    // The peer's entries are weft's now, one of each.
    const s = await kernelState(h2);
    expect([s.routes.length, s.neighbours.length, s.fdb.length]).toEqual([1, 1, 1]);
  });
});
