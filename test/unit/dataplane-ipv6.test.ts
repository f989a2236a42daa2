// The IPv6 dataplane, pure: what an IPv6 backend's model asks of the kernel, how its dumps are
// read back (so that what weft wrote compares equal to what it wants), and what it refuses.
import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4, Ipv6 } from '../../src/alloc/cidr.js';
import { renderOp } from '../../src/dataplane/batch.js';
import { DesiredPeers } from '../../src/dataplane/desired.js';
import { createBackend, DataplaneError, hostRunner } from '../../src/dataplane/index.js';
import {
  desiredState,
  emptyState,
  modelContext,
  toLinkName,
  vxlanDeviceNameFor,
  type KernelState,
  type LinkName,
} from '../../src/dataplane/model.js';
import { parseDevice, parseFdb, parseNeighs, parseRoutes } from '../../src/dataplane/observe.js';
import { applyResults, kernelTables, plan, planPending } from '../../src/dataplane/planner.js';
import type { BackendSettings, Peer, Uplink } from '../../src/dataplane/types.js';
import { ip6, net6, vxPeer6 } from '../helpers/peers.js';
import { silentLogger } from '../../src/log.js';

const dev = (s: string) => toLinkName(s) as LinkName;
const fl6 = dev('flannel-v6.1');
const eth = dev('eth0');

const vxlan6: BackendSettings = { type: 'vxlan', family: 6, vni: 1, port: 0, directRouting: false, gbp: false, network: net6('fd00:5::/48') };
const hostGw6: BackendSettings = { ...vxlan6, type: 'host-gw' };
const uplink6: Uplink = { name: 'eth0', index: 2, mtu: 1500, address: ip6('fd00:1::1'), prefixLength: 64 };
const own = net6('fd00:5:0:1::/64');

const peer = vxPeer6;

function desired(peers: Peer[], settings = vxlan6): KernelState {
  return desiredState({ settings, uplink: uplink6, uplinkDev: eth, vxlanDev: fl6, ownSubnet: own, peers }).state;
}

const lines = (want: KernelState, have: KernelState) => plan(want, have).map(renderOp);

describe('IPv6 dataplane model', () => {
  it('gives a vxlan peer a permanent neighbour, an FDB entry to its IPv6 underlay address and an onlink route', () => {
    expect(lines(desired([peer(2)]), emptyState())).toEqual([
      'neigh replace fd00:5:0:2:: lladdr 02:00:00:00:06:02 dev flannel-v6.1 nud permanent',
      'fdb replace 02:00:00:00:06:02 dev flannel-v6.1 dst fd00:1::2 self permanent',
      'route replace fd00:5:0:2::/64 via fd00:5:0:2:: dev flannel-v6.1 onlink proto 119 metric 1024',
    ]);
  });

  it('removes a peer route first and neighbour last, naming the metric the kernel gave the route', () => {
    expect(lines(desired([peer(2)]), desired([peer(2), peer(3)]))).toEqual([
      'route del fd00:5:0:3::/64 dev flannel-v6.1 proto 119 metric 1024',
      'fdb del 02:00:00:00:06:03 dev flannel-v6.1 dst fd00:1::3 self',
      'neigh del fd00:5:0:3:: dev flannel-v6.1',
    ]);
  });

  it('leaves out its own subnet, peers of the other family, unusable addresses and subnets outside the network', () => {
    const r = desiredState({
      settings: { ...vxlan6, network: undefined },
      uplink: uplink6,
      uplinkDev: eth,
      vxlanDev: fl6,
      ownSubnet: own,
      peers: [
        peer(1),
        peer(2),
        peer(3, { subnet: Cidr.parse('10.5.3.0/24')!, key: '10.5.3.0-24' }),
        peer(4, { publicIP: Ipv4.parse('192.0.2.4')! }),
        peer(5, { publicIP: ip6('ff02::1') }),
        peer(6, { publicIP: ip6('::') }),
        peer(7, { publicIP: ip6('fe80::7') }),
        peer(8, { publicIP: ip6('::1') }),
        peer(9, { subnet: net6('fe80::/64'), key: 'fe80::-64' }),
        peer(10, { subnet: net6('::/0'), key: '::-0' }),
        peer(11, { subnet: net6('ff00::/64'), key: 'ff00::-64' }),
        peer(12, { publicIP: ip6('fd00:1::1') }),
        peer(13, { subnet: net6('fd00:5::/56'), key: 'fd00:5::-56' }),
      ],
    });
    expect([...r.state.routes.keys()]).toEqual(['fd00:5:0:2::/64 metric 1024']);
    const reasons = Object.fromEntries(r.skipped.map((s) => [s.key, s.reason]));
    expect(reasons).toEqual({
      '10.5.3.0-24': 'subnet 10.5.3.0/24 and public IP fd00:1::3 are not both IPv6',
      'fd00:5:0:4::-64': 'subnet fd00:5:0:4::/64 and public IP 192.0.2.4 are not both IPv6',
      'fd00:5:0:5::-64': 'public IP ff02::1 is a multicast address',
      'fd00:5:0:6::-64': 'public IP :: is the unspecified address',
      'fd00:5:0:7::-64': 'public IP fe80::7 is a link-local address',
      'fd00:5:0:8::-64': 'public IP ::1 is the loopback address',
      'fe80::-64': 'subnet fe80::/64 starts at a link-local address',
      '::-0': 'subnet ::/0 starts at the unspecified address',
      'ff00::-64': 'subnet ff00::/64 starts at a multicast address',
      'fd00:5:0:12::-64': "public IP fd00:1::1 is this host's own",
      'fd00:5::-56': "subnet fd00:5::/56 overlaps this host's fd00:5:0:1::/64",
    });
    const inNetwork = desiredState({ settings: vxlan6, uplink: uplink6, uplinkDev: eth, vxlanDev: fl6, ownSubnet: own, peers: [peer(2, { subnet: net6('fd00:6::/64') })] });
    expect(inNetwork.skipped[0]!.reason).toBe('subnet fd00:6::/64 is outside the network fd00:5::/48');
  });

  it('with directRouting, routes on-link peers via their public IPv6 address on the uplink', () => {
    const far = peer(3, { publicIP: ip6('fd00:2::3') });
    expect(lines(desired([peer(2), far], { ...vxlan6, directRouting: true }), emptyState())).toEqual([
      'neigh replace fd00:5:0:3:: lladdr 02:00:00:00:06:03 dev flannel-v6.1 nud permanent',
      'fdb replace 02:00:00:00:06:03 dev flannel-v6.1 dst fd00:2::3 self permanent',
      'route replace fd00:5:0:2::/64 via fd00:1::2 dev eth0 proto 119 metric 1024',
      'route replace fd00:5:0:3::/64 via fd00:5:0:3:: dev flannel-v6.1 onlink proto 119 metric 1024',
    ]);
  });

  it('host-gw: a route via the public IPv6 address, only for on-link peers', () => {
    const peers = [peer(2, { backendType: 'host-gw' }), peer(3, { backendType: 'host-gw', publicIP: ip6('fd00:2::3') })];
    const r = desiredState({ settings: hostGw6, uplink: uplink6, uplinkDev: eth, ownSubnet: own, peers });
    expect(lines(r.state, emptyState())).toEqual(['route replace fd00:5:0:2::/64 via fd00:1::2 dev eth0 proto 119 metric 1024']);
    expect(r.skipped).toEqual([{ key: 'fd00:5:0:3::-64', reason: 'public IP fd00:2::3 is not on-link on eth0 (fd00:1::/64)' }]);
  });

  it('keeps the incremental path equal to a from-scratch computation', () => {
    const ctx = modelContext({ settings: vxlan6, uplink: uplink6, uplinkDev: eth, vxlanDev: fl6, ownSubnet: own });
    const tables = kernelTables();
    const desired = new DesiredPeers(tables);
    const steps: Peer[][] = [
      [peer(2), peer(3), peer(4)],
      [peer(2), peer(4, { vtepMAC: '02:00:00:00:aa:04' })],
      [peer(2, { publicIP: ip6('fd00:1::22') }), peer(4, { vtepMAC: '02:00:00:00:aa:04' }), peer(5)],
      [peer(5)],
    ];
    let prev = new Map<string, Peer>();
    for (const step of steps) {
      // The change since the last step, as the agent's peer set hands it over.
      const delta = new Map<string, Peer | undefined>();
      for (const p of step) delta.set(p.key, p);
      for (const key of prev.keys()) if (!delta.has(key)) delta.set(key, undefined);
      desired.update(ctx, delta);
      const ops = planPending(tables);
      applyResults(tables, ops, ops.map(() => true));
      const kernel = emptyState();
      for (const [k, v] of tables.routes.dataplaneEntries()) kernel.routes.set(k, v);
      for (const [k, v] of tables.neighs.dataplaneEntries()) kernel.neighs.set(k, v);
      for (const [k, v] of tables.fdb.dataplaneEntries()) kernel.fdb.set(k, v);
      expect(plan(desiredState({ ...ctx, peers: step }).state, kernel)).toEqual([]);
      prev = new Map(step.map((p) => [p.key, p]));
    }
    const kernel = { routes: new Map(tables.routes.dataplaneEntries()) };
    expect([...kernel.routes.keys()]).toEqual(['fd00:5:0:5::/64 metric 1024']);
  });
});

describe('reading IPv6 kernel dumps', () => {
  // Captured from `ip -N -6 -json route show table main dev flannel-v6.1` (iproute2 6.1), plus
  // entries that must be left alone.
  const routeDump = [
    { dst: 'fd00:5:0:1::', protocol: '2', metric: 256, flags: [], pref: 'medium' },
    { dst: 'fd00:5:0:2::/64', gateway: 'fd00:5:0:2::', protocol: '119', metric: 1024, flags: ['onlink'], pref: 'medium' },
    { dst: 'FD00:5:0:3:0:0:0:0/64', gateway: 'FD00:0005:0:3::', protocol: '119', metric: 1024, flags: ['onlink'] },
    { dst: 'fe80::/64', protocol: '2', metric: 256, flags: [], pref: 'medium' },
    { dst: 'fd00:5:0:9::/64', gateway: 'fd00:5:0:9::', protocol: '3', metric: 1024, flags: ['onlink'] },
    { dst: 'fd00:5:0:7::/64', gateway: 'fd00:5:0:7::\nroute del default', protocol: '119', metric: 1024 },
    { dst: 'fd00:5:0:8::/64', gateway: '10.5.8.0', protocol: '119', metric: 1024 },
    { dst: '10.5.4.0/24', gateway: '10.5.4.0', protocol: '119' },
    { dst: 'fd00:5:0:6::1/64', gateway: 'fd00:5:0:6::', protocol: '119', metric: 1024 },
    { dst: 'default', gateway: 'fe80::1%eth0', protocol: '119', metric: 1024 },
  ];

  it('reads what weft wrote back under the keys it wants, so a converged host plans nothing', () => {
    const observed = emptyState();
    parseRoutes(routeDump.slice(0, 4), fl6, { onlyWeft: false, family: 6 }, observed.routes);
    parseNeighs(
      [
        { dst: 'fd00:5:0:2::', lladdr: '02:00:00:00:06:02', state: ['PERMANENT'] },
        { dst: 'fd00:5:0:3::', lladdr: '02:00:00:00:06:03', state: ['PERMANENT'] },
        { dst: 'fe80::5c1b:52ff:fe87:8f31', lladdr: '5e:1b:52:87:8f:31', router: true, state: ['STALE'] },
      ],
      fl6,
      observed.neighs,
      6,
    );
    parseFdb(
      [
        { mac: '02:00:00:00:06:02', dst: 'fd00:1::2', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:06:03', dst: 'fd00:1:0:0:0:0:0:3', flags: ['self'], state: 'permanent' },
        { mac: '33:33:00:00:00:01', flags: ['self'], state: 'permanent' },
      ],
      fl6,
      observed.fdb,
      6,
    );
    expect(plan(desired([peer(2), peer(3)]), observed)).toEqual([]);
  });

  it('removes stale entries precisely and leaves what it cannot name or does not own', () => {
    const observed = emptyState();
    parseRoutes(routeDump, fl6, { onlyWeft: false, family: 6 }, observed.routes);
    expect([...observed.routes.keys()]).toEqual(['fd00:5:0:2::/64 metric 1024', 'fd00:5:0:3::/64 metric 1024', 'fd00:5:0:9::/64 metric 1024']);
    parseNeighs(
      [
        { dst: 'fd00:5:0:2::', lladdr: '02:00:00:00:06:02', state: ['PERMANENT'] },
        { dst: 'fd00:5:0:3::', lladdr: '02:00:00:00:06:03', state: ['PERMANENT'] },
        { dst: 'fd00:5:0:9::', lladdr: '02:00:00:00:06:09', state: ['PERMANENT'] },
        { dst: '10.5.9.0', lladdr: '02:00:00:00:00:09', state: ['PERMANENT'] },
      ],
      fl6,
      observed.neighs,
      6,
    );
    parseFdb(
      [
        { mac: '02:00:00:00:06:02', dst: 'fd00:1::2', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:06:03', dst: 'fd00:1::3', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:06:09', dst: 'fd00:1::9', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:00:0a', dst: '192.0.2.10', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:06:0b', dst: 'fd00:1::b%eth0', flags: ['self'], state: 'permanent' },
      ],
      fl6,
      observed.fdb,
      6,
    );
    expect(lines(desired([peer(2), peer(3)]), observed)).toEqual([
      'route del fd00:5:0:9::/64 dev flannel-v6.1 proto 3 metric 1024',
      'fdb del 02:00:00:00:06:09 dev flannel-v6.1 dst fd00:1::9 self',
      'neigh del fd00:5:0:9:: dev flannel-v6.1',
    ]);
  });

  it('on the uplink keeps only weft-protocol IPv6 routes inside the network', () => {
    const into = new Map();
    parseRoutes(
      [
        { dst: 'fd00:1::/64', protocol: '2', metric: 256, flags: [] },
        { dst: 'fd00:5:0:2::/64', gateway: 'fd00:1::2', protocol: '119', metric: 1024, flags: [] },
        { dst: 'fd00:9:0:2::/64', gateway: 'fd00:1::2', protocol: '119', metric: 1024, flags: [] },
        { dst: 'fd00:5:0:3::/64', gateway: 'fd00:1::3', protocol: '4', metric: 1024, flags: [] },
        { dst: 'default', gateway: 'fd00:1::254', metric: 1024, flags: [] },
      ],
      eth,
      { onlyWeft: true, scope: net6('fd00:5::/48'), family: 6 },
      into,
    );
    expect([...into.keys()]).toEqual(['fd00:5:0:2::/64 metric 1024']);
  });

  it('describes an IPv6 vxlan device: local6, and its addresses without the link-local one', () => {
    const d = parseDevice(
      [
        {
          ifname: 'flannel-v6.1',
          address: '7e:1b:52:87:8f:31',
          mtu: 1430,
          flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
          linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local6: 'fd00:1::1', link: 'eth0', port: 8472, learning: false } },
          addr_info: [
            { family: 'inet6', local: 'fd00:5:0:1::', prefixlen: 128, scope: 'global', nodad: true },
            { family: 'inet6', local: 'fd00:9::7', prefixlen: 64, scope: 'global' },
            { family: 'inet6', local: 'fe80::7c1b:52ff:fe87:8f31', prefixlen: 64, scope: 'link' },
            { family: 'inet', local: '10.5.1.0', prefixlen: 32 },
            { family: 'inet6', local: 'fd00:5:0:1::%x', prefixlen: 128 },
          ],
        },
      ],
      6,
    )!;
    expect([d.name, d.mac, d.mtu, d.up, d.kind, d.vni, d.local?.toString(), d.link, d.port, d.learning]).toEqual([
      'flannel-v6.1', '7e:1b:52:87:8f:31', 1430, true, 'vxlan', 1, 'fd00:1::1', 'eth0', 8472, false,
    ]);
    expect(d.addresses.map((a) => `${a.ip}/${a.prefix}`)).toEqual(['fd00:5:0:1::/128', 'fd00:9::7/64']);
  });
});

describe('creating an IPv6 backend', () => {
  const make = (s: Partial<BackendSettings>, u: Partial<Uplink> = {}, publicIP: Ipv4 | Ipv6 = ip6('fd00:1::1')) => () =>
    createBackend({ ...vxlan6, ...s }, { ...uplink6, ...u }, publicIP, hostRunner, silentLogger);

  it('names the device as flanneld does, and refuses a VNI whose name the kernel would not take', () => {
    expect(vxlanDeviceNameFor(6, 1)).toBe('flannel-v6.1');
    expect(vxlanDeviceNameFor(6, 9999)).toBe('flannel-v6.9999');
    expect(vxlanDeviceNameFor(6, 10000)).toBeUndefined();
    expect(vxlanDeviceNameFor(4, 1)).toBe('flannel.1');
    expect(make({ vni: 9999 })).not.toThrow();
    expect(make({ vni: 10000 })).toThrow(/15 characters/);
  });

  it('takes 70 bytes off the underlay MTU (configured, else the uplink\'s), and never goes below the IPv6 minimum of 1280', () => {
    expect(make({}, { mtu: 1350 })).not.toThrow(); // 1280
    expect(make({}, { mtu: 1349 })).toThrow(/MTU must be an integer in 1280\.\.65535, got 1279/);
    expect(make({ mtu: 1349 })).toThrow(/got 1279/);
    expect(make({ mtu: 1350 }, { mtu: 1500 })).not.toThrow();
    expect(make({ mtu: 1500 }, { mtu: 1349 })).toThrow(/got 1279/); // capped at the uplink, which cannot carry it
    expect(make({ mtu: 9001 }, { mtu: 1500 })).not.toThrow(); // capped at the uplink: 1430
  });

  it('refuses addresses, networks and own subnets of the other family', async () => {
    expect(make({}, {}, Ipv4.parse('192.0.2.1')!)).toThrow(DataplaneError);
    expect(make({}, {}, Ipv4.parse('192.0.2.1')!)).toThrow(/public IP 192\.0\.2\.1 is not an IPv6 address/);
    expect(make({}, { address: Ipv4.parse('192.0.2.1')!, prefixLength: 24 })).toThrow(/uplink address/);
    expect(make({ network: Cidr.parse('10.5.0.0/16')! })).toThrow(/network 10\.5\.0\.0\/16 is not IPv6/);
    expect(make({ type: 'host-gw' }, { address: Ipv4.parse('192.0.2.1')! })).toThrow(/uplink address/);
    expect(make({ family: 5 as 6 })).toThrow(/family/);
    await expect(make({})().reconcile(Cidr.parse('10.5.1.0/24')!, [])).rejects.toThrow(/own subnet 10\.5\.1\.0\/24 is not IPv6/);
    await expect(make({ type: 'host-gw' })().reconcile(Cidr.parse('10.5.1.0/24')!, [])).rejects.toThrow(/own subnet/);
    // An IPv4 backend is unchanged: family 4 by default, and it refuses IPv6 addresses.
    expect(make({ family: undefined, network: undefined }, {}, ip6('fd00:1::1'))).toThrow(/not an IPv4 address/);
  });
});
