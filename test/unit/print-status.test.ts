// Rendering node status: the wide lease table, the node table and `weft describe lease`,
// from records as the store reads them (valid, unreadable, hostile).
import { describe, expect, it } from 'vitest';
import { leaseFromStore } from '../../src/api/convert.js';
import { encodeNodeStatus, type NodeStatus } from '../../src/api/node-status.js';
import { describeLease, leaseTable, nodeTable, statusWarnings } from '../../src/cli/print.js';
import { Layout } from '../../src/store/layout.js';
import { indexSnapshot } from '../../src/control/snapshot.js';
import { nodesByLease, nodeViews } from '../../src/control/views.js';
import { nodeStatusRecord, subnetRecord, type KV } from '../../src/store/store.js';

const L = new Layout('/p');
const NOW = Date.parse('2025-01-02T03:05:00Z');
const VALUE = (ip: string, mac: string, node?: string) =>
  `{"PublicIP":"${ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}${node ? `,"NodeName":"${node}"` : ''}}`;

let rev = 10;
function kv(key: string, value: string, leaseId = '7'): KV {
  return { key, value, modRevision: ++rev, createRevision: rev, version: 1, leaseId };
}

function status(node: string, overrides: Partial<NodeStatus> = {}): NodeStatus {
  return {
    v: 1,
    nodeName: node,
    network: 'default',
    peers: { desired: 2, programmed: 2, skipped: 0 },
    lastSync: '2025-01-02T03:04:55.000Z',
    ready: true,
    version: '0.1.0',
    startedAt: '2025-01-02T03:00:00.000Z',
    publishedAt: '2025-01-02T03:04:56.000Z',
    ...overrides,
  };
}

/** A snapshot with three leases (h1 ready, h2 converging, a flanneld host) and node records. */
function snapshot(extra: KV[] = []) {
  const kvs = [
    kv('/p/config', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}', '0'),
    kv('/p/subnets/10.5.1.0-24', VALUE('192.0.2.1', '02:00:00:00:00:01', 'h1')),
    kv('/p/subnets/10.5.2.0-24', VALUE('192.0.2.2', '02:00:00:00:00:02', 'h2')),
    kv('/p/subnets/10.5.3.0-24', VALUE('192.0.2.3', '02:00:00:00:00:03')),
    kv('/p/_weft/nodes/default/h1', encodeNodeStatus(status('h1', { lease: '10.5.1.0-24', subnet: '10.5.1.0/24', publicIP: '192.0.2.1' }))),
    kv('/p/_weft/nodes/default/h2', encodeNodeStatus(status('h2', { lease: '10.5.2.0-24', subnet: '10.5.2.0/24', ready: false, reason: 'converging the dataplane', peers: { desired: 2, programmed: 0, skipped: 0 }, lastSync: undefined }))),
    // h9's lease is gone (deleted by an operator): it still shows in `get nodes`.
    kv('/p/_weft/nodes/default/h9', encodeNodeStatus(status('h9', { lease: '10.5.9.0-24', subnet: '10.5.9.0/24', ready: false, reason: 'acquiring a lease' }))),
    ...extra,
  ];
  return indexSnapshot(L, rev, new Map(kvs.map((k) => [k.key, k])));
}

function leaseRows(snap: ReturnType<typeof snapshot>) {
  const records = snap.subnets.get('default')!;
  const nodes = nodesByLease(snap, L);
  return {
    leases: records.map((r) => leaseFromStore(r, 3600, NOW, '2025-01-02T03:00:00Z')),
    nodes: records.map((r) => nodes.get(r.kv.key)),
    records,
  };
}

describe('weft get leases -o wide', () => {
  it('joins each lease to its holder\'s status: READY, PEERS, LAST-SYNC, VERSION', () => {
    const { leases, nodes } = leaseRows(snapshot());
    const text = leaseTable(leases, true, NOW, false, nodes);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+NODE\s+PUBLIC-IP\s+BACKEND\s+VTEP-MAC\s+AGE\s+EXPIRES\s+VNI\s+SUBNET\s+READY\s+PEERS\s+LAST-SYNC\s+VERSION$/);
    expect(lines[1]).toMatch(/^10\.5\.1\.0-24\s+h1\s.*\s10\.5\.1\.0\/24\s+yes\s+2\/2\s+5s\s+0\.1\.0$/);
    expect(lines[2]).toMatch(/^10\.5\.2\.0-24\s+h2\s.*\s10\.5\.2\.0\/24\s+no\s+0\/2\s+<none>\s+0\.1\.0$/);
    expect(lines[3]).toMatch(/^10\.5\.3\.0-24\s+<none>\s.*\s10\.5\.3\.0\/24\s+unknown\s+<none>\s+<none>\s+<none>$/);
    // The plain table stays as it was.
    expect(leaseTable(leases, false, NOW, false, nodes)).not.toMatch(/READY/);
  });

  it('shows an unreadable record as unknown and names its key in a warning', () => {
    const bad = kv('/p/_weft/nodes/default/h1', JSON.stringify({ ...status('h1', { lease: '10.5.1.0-24' }), ready: 'very' }));
    const snap = snapshot([bad]);
    const { leases, nodes } = leaseRows(snap);
    expect(nodes[0]).toBeUndefined(); // an unreadable record names no lease we can trust
    expect(leaseTable(leases, true, NOW, false, nodes).split('\n')[1]).toMatch(/\sunknown\s+<none>\s+<none>\s+<none>$/);
    expect(statusWarnings(snap.nodes)).toBe('warning: unreadable node status at /p/_weft/nodes/default/h1: ready "very" is not true or false\n');
  });

  it('prefers the record of the node the lease names when two claim it', () => {
    const stale = kv('/p/_weft/nodes/default/old', encodeNodeStatus(status('old', { lease: '10.5.1.0-24', publishedAt: '2025-01-02T03:04:59.000Z', ready: false, reason: 'x' })));
    const { nodes } = leaseRows(snapshot([stale]));
    expect(nodes[0]!.name).toBe('h1');
  });
});

describe('weft get nodes', () => {
  it('lists every record, nodes whose lease is gone included', () => {
    const views = nodeViews(snapshot(), L);
    const text = nodeTable(views, false, NOW, false);
    expect(text).toBe(
      [
        'NAME   READY   SUBNET        PEERS   LAST-SYNC   VERSION   AGE',
        'h1     yes     10.5.1.0/24   2/2     5s          0.1.0     5m',
        'h2     no      10.5.2.0/24   0/2     <none>      0.1.0     5m',
        'h9     no      10.5.9.0/24   2/2     5s          0.1.0     5m',
        '',
      ].join('\n'),
    );
    const wide = nodeTable(views, true, NOW, false).split('\n');
    expect(wide[0]).toMatch(/\sLEASE\s+PUBLIC-IP\s+REASON$/);
    expect(wide[1]).toMatch(/\s10\.5\.1\.0-24\s+192\.0\.2\.1\s+<none>$/);
    expect(wide[2]).toMatch(/\s10\.5\.2\.0-24\s+<none>\s+converging the dataplane$/);
    expect(wide[3]).toMatch(/\s10\.5\.9\.0-24 \(gone\)\s+<none>\s+acquiring a lease$/);
    expect(views.map((v) => v.resource.status.leaseFound)).toEqual([true, true, false]);
  });

  it('escapes a hostile key and shows its record as unknown', () => {
    const evil = kv('/p/_weft/nodes/default/x\u001b[2Jy', '{"v":1}');
    const views = nodeViews(snapshot([evil]), L);
    const row = nodeTable(views, true, NOW, false).split('\n').find((l) => l.startsWith('x'))!;
    expect(row).toMatch(/^x\\u001b\[2Jy\s+unknown\s+<none>\s+<none>\s+<none>\s+<none>\s+<unknown>\s+<none>\s+<none>\s+unreadable record$/);
    expect(views.find((v) => v.record.name.startsWith('x'))!.resource.metadata.annotations!['weft.io/invalid-value']).toMatch(/nodeName/);
  });

  it('refuses a record whose key and content disagree', () => {
    const moved = kv('/p/_weft/nodes/blue/h1', encodeNodeStatus(status('h1')));
    const r = nodeStatusRecord(L, moved);
    expect(r.status.ok ? '' : r.status.error).toBe('the record names node "h1" of network "default", its key node "h1" of network "blue"');
  });
});

describe('weft describe lease', () => {
  function describeOf(name: string, extra: KV[] = [], opts: { reservation?: boolean } = {}) {
    const snap = snapshot(extra);
    const { leases, nodes, records } = leaseRows(snap);
    const i = records.findIndex((r) => r.name === name);
    return describeLease(
      {
        lease: leases[i]!,
        record: records[i]!,
        ttl: { ttl: 3600, granted: 86400 },
        ...(nodes[i] ? { node: nodes[i] } : {}),
        ...(opts.reservation ? { reservation: { name: 'gw-1', node: 'h1' } } : {}),
      },
      NOW,
    );
  }

  it('prints the lease, its etcd lease, its reservation and its node status', () => {
    const text = describeOf('10.5.1.0-24', [], { reservation: true }).replace(/^Resource Version: \d+$/m, 'Resource Version: N');
    expect(text).toBe(
      [
        'Name:             10.5.1.0-24',
        'Network:          default',
        'Key:              /p/subnets/10.5.1.0-24',
        'Subnet:           10.5.1.0/24',
        'Node:             h1',
        'Public IP:        192.0.2.1',
        'Backend:          vxlan, VNI 1, VTEP MAC 02:00:00:00:00:01',
        `Value:            ${VALUE('192.0.2.1', '02:00:00:00:00:01', 'h1')}`,
        'Resource Version: N',
        'Etcd Lease:       7, TTL 86400s, 60m left (expires 2025-01-02T04:05:00Z)',
        'Reservation:      subnet/gw-1 for node h1',
        'Node Status:',
        '  Key:            /p/_weft/nodes/default/h1',
        '  Ready:          yes',
        '  Peers:          2 programmed of 2 desired',
        '  Last Sync:      5s ago (2025-01-02T03:04:55.000Z)',
        '  Version:        0.1.0',
        '  Started:        5m ago (2025-01-02T03:00:00.000Z)',
        '  Published:      4s ago (2025-01-02T03:04:56.000Z)',
        '',
      ].join('\n'),
    );
  });

  it('says why a node is not ready, and when a lease has no status record', () => {
    expect(describeOf('10.5.2.0-24')).toMatch(/\n {2}Ready: +no: converging the dataplane\n {2}Peers: +0 programmed of 2 desired\n {2}Last Sync: +<none>\n/);
    expect(describeOf('10.5.3.0-24')).toMatch(/\nReservation: +<none>\nNode Status: +<none> \(no record: a flanneld host, a stopped agent/);
  });

  it('shows a reservation as one and escapes a hostile value', () => {
    const snap = snapshot([kv('/p/subnets/10.5.4.0-24', '{"PublicIP":"0.0.0.0","NodeName":"gw\\u001b"}', '0')]);
    const r = snap.subnets.get('default')!.find((x) => x.name === '10.5.4.0-24')!;
    const text = describeLease({ lease: leaseFromStore(r, undefined, NOW), record: r }, NOW);
    expect(text).toMatch(/\nEtcd Lease: +<none> \(a reservation: it never expires\)\n/);
    expect(text).toMatch(/\nInvalid Value: +NodeName "gw\\u001b" is not a valid node name\n/);
    expect(text).not.toMatch(/\u001b/);
    expect(subnetRecord('default', '/p/subnets/', r.kv).reserved).toBe(true);
  });
});
