import { describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { renderOp } from '../../src/dataplane/batch.js';
import { parseBatchOutcome } from '../../src/dataplane/ipcmd.js';
import { emptyState, toLinkName, type LinkName } from '../../src/dataplane/model.js';
import { parseDevice, parseFdb, parseNeighs, parseRoutes } from '../../src/dataplane/observe.js';
import { plan } from '../../src/dataplane/planner.js';

const fl = toLinkName('flannel.1') as LinkName;
const eth = toLinkName('eth0') as LinkName;

describe('parsing kernel dumps', () => {
  it('keeps routes on the device except the kernel ones, with numeric protocols and metrics', () => {
    const into = new Map();
    parseRoutes(
      [
        { dst: '10.5.2.0/24', gateway: '10.5.2.0', protocol: '119', flags: ['onlink'] },
        { dst: '10.5.3.0/24', gateway: '10.5.3.0', flags: ['onlink'] }, // boot: protocol omitted
        { dst: '10.5.4.0/24', gateway: '10.5.4.0', protocol: '119', metric: 7, flags: [] },
        { dst: '10.5.1.0/24', protocol: '2', scope: '253', flags: [] },
        { dst: '10.5.0.5', gateway: '10.5.2.0', flags: ['onlink'] },
        { dst: '10.5.6.0/24', type: 'blackhole' },
        { dst: '10.5.7.0/24', gateway: '10.5.7.0\nroute del default' },
        { dst: '10.5.8.1/24', gateway: '10.5.8.0' },
        'garbage',
        null,
      ],
      fl,
      { onlyWeft: false },
      into,
    );
    expect([...into.keys()]).toEqual(['10.5.2.0/24', '10.5.3.0/24', '10.5.4.0/24 metric 7', '10.5.0.5/32']);
    expect(into.get('10.5.3.0/24').proto).toBe(3);
  });

  it('keeps only weft-protocol routes inside the network on the uplink', () => {
    const into = new Map();
    const raw = [
      { dst: '10.5.2.0/24', gateway: '192.0.2.2', protocol: '119', flags: [] },
      { dst: '10.9.2.0/24', gateway: '192.0.2.2', protocol: '119', flags: [] },
      { dst: '10.5.3.0/24', gateway: '192.0.2.3', protocol: '4', flags: [] },
      { dst: 'default', gateway: '192.0.2.254', flags: [] },
    ];
    parseRoutes(raw, eth, { onlyWeft: true, scope: Cidr.parse('10.5.0.0/16')! }, into);
    expect([...into.keys()]).toEqual(['10.5.2.0/24']);
  });

  it('keeps only permanent neighbours and unicast or flood FDB entries', () => {
    const state = emptyState();
    parseNeighs(
      [
        { dst: '10.5.2.0', lladdr: '02:00:00:00:00:02', state: ['PERMANENT'] },
        { dst: '10.5.4.4', lladdr: '02:00:00:00:00:44', state: ['STALE'] },
        { dst: '10.5.5.0', state: ['FAILED'] },
        { dst: '10.5.6.0', lladdr: 'zz:00:00:00:00:06', state: ['PERMANENT'] },
      ],
      fl,
      state.neighs,
    );
    parseFdb(
      [
        { mac: '02:00:00:00:00:02', dst: '192.0.2.2', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:00:02', dst: '192.0.2.22', flags: ['self'], state: 'permanent' },
        { mac: '00:00:00:00:00:00', dst: '192.0.2.50', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:00:07', dst: '192.0.2.7', flags: ['self'], state: 'permanent', port: 4789 },
        { mac: '33:33:00:00:00:01', flags: ['self'], state: 'permanent' },
        { mac: '02:00:00:00:00:09', dst: '192.0.2.9', flags: [], master: 'br0' },
      ],
      fl,
      state.fdb,
    );
    expect([...state.neighs.keys()]).toEqual(['10.5.2.0']);
    expect([...state.fdb.keys()]).toEqual(['02:00:00:00:00:02', '02:00:00:00:00:02 192.0.2.22', '00:00:00:00:00:00', '02:00:00:00:00:07']);
    // Nothing desired: every parsed entry is stale, and each renders to a precise delete.
    expect(plan(emptyState(), state).map(renderOp)).toEqual([
      'fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.2 self',
      'fdb del 02:00:00:00:00:02 dev flannel.1 dst 192.0.2.22 self',
      'fdb del 00:00:00:00:00:00 dev flannel.1 dst 192.0.2.50 self',
      'fdb del 02:00:00:00:00:07 dev flannel.1 dst 192.0.2.7 self',
      'neigh del 10.5.2.0 dev flannel.1',
    ]);
  });

  it('describes a vxlan device, rejecting unusable names and MACs', () => {
    const d = parseDevice([
      {
        ifname: 'flannel.1',
        address: '1E:0a:03:8b:2f:f4',
        mtu: 1450,
        flags: ['UP'],
        linkinfo: { info_kind: 'vxlan', info_data: { id: 1, local: '192.0.2.1', link: 'eth0', port: 8472, learning: false } },
        addr_info: [
          { family: 'inet', local: '10.5.1.0', prefixlen: 32 },
          { family: 'inet', local: '10.5.9.7', prefixlen: 24 },
          { family: 'inet6', local: 'fe80::1', prefixlen: 64 },
        ],
      },
    ])!;
    expect([d.mac, d.vni, d.local?.toString(), d.link, d.port, d.learning, d.gbp, d.up]).toEqual([
      '1e:0a:03:8b:2f:f4', 1, '192.0.2.1', 'eth0', 8472, false, false, true,
    ]);
    expect(d.addresses.map((a) => `${a.ip}/${a.prefix}`)).toEqual(['10.5.1.0/32', '10.5.9.7/24']);
    expect(parseDevice([{ ifname: 'bad name', address: '02:00:00:00:00:01', mtu: 1450 }])).toBeUndefined();
    expect(parseDevice([{ ifname: 'flannel.1', address: '01:00:5e:00:00:01', mtu: 1450 }])).toBeUndefined();
  });
});

describe('batch outcome', () => {
  it('maps "Command failed -:N" to lines when the batch ran to the end', () => {
    const r = parseBatchOutcome({ exitCode: 1, stdout: '', stderr: 'RTNETLINK answers: No such process\nCommand failed -:2\n' }, 4);
    expect(r.ok).toEqual([true, false, true, true]);
    expect(r.errors).toEqual(['RTNETLINK answers: No such process']);
  });

  it('treats lines after the last reported failure as not applied when ip aborted', () => {
    const stderr = 'Command failed -:1\nRTNETLINK answers: No such file or directory\n';
    expect(parseBatchOutcome({ exitCode: 2, stdout: '', stderr }, 4).ok).toEqual([false, false, false, false]);
    expect(parseBatchOutcome({ exitCode: 2, stdout: '', stderr: 'Command failed -:2\n' }, 3).ok).toEqual([true, false, false]);
    expect(parseBatchOutcome({ exitCode: 0, stdout: '', stderr: '' }, 2).failures).toBe(0);
    expect(parseBatchOutcome({ exitCode: 1, stdout: '', stderr: 'Cannot open network namespace\n' }, 2).failures).toBe(2);
  });
});
