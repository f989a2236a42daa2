// The agent's per-family view of the lease set (PeerSet) and how one reconcile over both
// families is counted per host (combineReports). Pure.
import { describe, expect, it } from 'vitest';
import { PeerSet } from '../../src/agent/peer-set.js';
import { combineReports } from '../../src/agent/reconcile-loop.js';
import type { ReconcileReport } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';
import { subnetRecord, type SubnetRecord } from '../../src/store/store.js';

const PREFIX = '/coreos.com/network/subnets/';
let revision = 10;

function record(name: string, value: string): SubnetRecord {
  revision++;
  return subnetRecord('default', PREFIX, { key: PREFIX + name, value, modRevision: revision, createRevision: revision, version: 1, leaseId: '7' });
}

const MAC4 = 'c6:d2:32:6f:8f:44';
const MAC6 = 'ca:11:22:33:44:55';
const dual = (i: number) =>
  record(
    `10.5.${i}.0-24&fd00:5:0:${i}::-64`,
    `{"PublicIP":"192.0.2.${i}","PublicIPv6":"fd00:1::${i}","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${MAC4}"},"BackendV6Data":{"VNI":1,"VtepMAC":"${MAC6.slice(0, -2)}${i}${i}"}}`,
  );

/** The peers a fresh set selects from these records (as a listing hands them over). */
function select(family: 4 | 6, records: SubnetRecord[]) {
  const set = new PeerSet(silentLogger, 'vxlan', family);
  set.apply(records.map((record) => ({ type: 'added' as const, key: record.kv.key, record })));
  return [...set.peers()];
}

describe('PeerSet per address family', () => {
  it("reads a dual-stack lease's IPv6 half (subnet, PublicIPv6, BackendV6Data) for the IPv6 stack", () => {
    const rec = dual(3);
    const [p6] = select(6, [rec]);
    expect([p6!.subnet.toString(), p6!.publicIP.toString(), p6!.vtepMAC, p6!.vni]).toEqual(['fd00:5:0:3::/64', 'fd00:1::3', 'ca:11:22:33:44:33', 1]);
    const [p4] = select(4, [rec]);
    expect([p4!.subnet.toString(), p4!.publicIP.toString(), p4!.vtepMAC]).toEqual(['10.5.3.0/24', '192.0.2.3', MAC4]);
  });

  it('gives each stack only the leases with its half', () => {
    const v4only = record('10.5.7.0-24', `{"PublicIP":"192.0.2.7","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${MAC4}"}}`);
    const v6only = record('0.0.0.0-0&fd00:5:0:8::-64', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::8","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"${MAC6}"}}`);
    const noV6Ip = record('10.5.9.0-24&fd00:5:0:9::-64', `{"PublicIP":"192.0.2.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${MAC4}"}}`);
    const keys = (family: 4 | 6) => select(family, [v4only, v6only, noV6Ip]).map((p) => p.key);
    expect(keys(4)).toEqual(['10.5.7.0-24', '10.5.9.0-24&fd00:5:0:9::-64']);
    expect(keys(6)).toEqual(['0.0.0.0-0&fd00:5:0:8::-64']);
  });

  it('keeps the older of two overlapping IPv6 subnets (bigint bounds)', () => {
    const older = record('0.0.0.0-0&fd00:5:0:10::-64', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::10","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"${MAC6}"}}`);
    const wider = record('0.0.0.0-0&fd00:5::-56', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::11","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:66"}}`);
    const apart = record('0.0.0.0-0&fd00:5:1::-64', `{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::12","BackendType":"vxlan","BackendV6Data":{"VNI":1,"VtepMAC":"ca:11:22:33:44:77"}}`);
    const kept = select(6, [wider, older, apart]).map((p) => p.key);
    expect(kept.sort()).toEqual(['0.0.0.0-0&fd00:5:0:10::-64', '0.0.0.0-0&fd00:5:1::-64']);
  });
});

describe('combineReports', () => {
  const report = (r: Partial<ReconcileReport>): ReconcileReport => ({ operations: 0, failures: 0, ...r });
  const ops = (route: number, failed = 0) => ({ route: { ok: route, failed }, neigh: { ok: route, failed: 0 }, fdb: { ok: route, failed: 0 } });

  it('counts hosts once, programmed as far as every family has them, and adds up the work', () => {
    const out = combineReports([
      { desired: 3, report: report({ operations: 9, peersProgrammed: 3, byKind: ops(3), ms: 2, kernelMs: 1 }) },
      { desired: 3, report: report({ operations: 7, failures: 1, peersProgrammed: 2, skipped: 1, byKind: ops(2, 1), ms: 3, kernelMs: 2 }) },
    ]);
    expect(out).toEqual({ desired: 3, peersProgrammed: 2, skipped: 1, operations: 16, failures: 1, byKind: { route: { ok: 5, failed: 1 }, neigh: { ok: 5, failed: 0 }, fdb: { ok: 5, failed: 0 } }, ms: 5, kernelMs: 3 });
  });

  it('reports nothing programmed when no stack ran', () => {
    expect(combineReports([])).toMatchObject({ desired: 0, peersProgrammed: 0, operations: 0 });
  });
});
