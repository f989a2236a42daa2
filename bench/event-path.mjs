// The event path's own JavaScript cost, without the kernel: with N peers known, 600 lease
// events (add a lease, change its VTEP MAC, remove it, ...) go through the peer set, the
// desired state and the planner, as in the agent (docs/event-path.md, steps 2-5), and the
// plan's outcome is recorded as applied. CPU per event should not grow with N.
//
//   node bench/event-path.mjs [N ...]      (default 1000 5000 20000; after `make build`)
import { Cidr, Ipv4 } from '../dist/alloc/cidr.js';
import { PeerSet } from '../dist/agent/peer-set.js';
import { DesiredPeers } from '../dist/dataplane/desired.js';
import { modelContext, toLinkName } from '../dist/dataplane/model.js';
import { applyResults, kernelTables, planPending } from '../dist/dataplane/planner.js';
import { silentLogger } from '../dist/log.js';
import { subnetRecord } from '../dist/store/store.js';
import { printResult } from './lib.mjs';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const NS = sizes.length ? sizes : [1000, 5000, 20000];
const EVENTS = 600;
const PREFIX = '/coreos.com/network/subnets/';
const hex = (n) => n.toString(16).padStart(2, '0');
const record = (i, variant, revision) =>
  subnetRecord('default', PREFIX, {
    key: `${PREFIX}10.${1 + (i >> 8)}.${i & 255}.0-24`,
    value: JSON.stringify({ PublicIP: `198.18.${i >> 8}.${i & 255}`, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: `02:00:0${variant}:00:${hex(i >> 8)}:${hex(i & 255)}` } }),
    modRevision: revision,
    createRevision: 100 + i,
    version: 1,
    leaseId: '7',
  });

function measure(n) {
  const settings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false, network: Cidr.parse('10.0.0.0/8') };
  const uplink = { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('192.0.2.1'), prefixLength: 24 };
  const ctx = modelContext({ settings, uplink, uplinkDev: toLinkName('eth0'), vxlanDev: toLinkName('flannel.1'), ownSubnet: Cidr.parse('10.0.0.0/24') });
  const set = new PeerSet(silentLogger, 'vxlan', 4);
  const tables = kernelTables();
  const desired = new DesiredPeers(tables);
  const records = new Map();
  const pass = (changes) => {
    set.apply(changes);
    desired.update(ctx, set.take().delta);
    const ops = planPending(tables);
    applyResults(tables, ops, ops.map(() => true));
    return ops.length;
  };
  const all = [];
  for (let i = 0; i < n; i++) {
    const r = record(i, 0, 100 + i);
    records.set(r.kv.key, r);
    all.push({ type: 'added', key: r.kv.key, record: r });
  }
  pass(all);
  const event = (e) => {
    const i = n + Math.floor(e / 3);
    const kind = e % 3;
    const r = record(i, kind, 100_000 + e);
    const previous = records.get(r.kv.key);
    if (kind === 2) {
      records.delete(r.kv.key);
      return pass([{ type: 'deleted', key: r.kv.key, previous }]);
    }
    records.set(r.kv.key, r);
    return pass([previous ? { type: 'updated', key: r.kv.key, record: r, previous } : { type: 'added', key: r.kv.key, record: r }]);
  };
  for (let e = 0; e < 60; e++) event(e); // warm-up
  const t0 = process.cpuUsage();
  let ops = 0;
  for (let e = 60; e < 60 + EVENTS; e++) ops += event(e);
  const u = process.cpuUsage(t0);
  return { n, events: EVENTS, cpuMsPerEvent: Math.round(((u.user + u.system) / 1000 / EVENTS) * 1000) / 1000, opsPerEvent: ops / EVENTS };
}

const results = NS.map(measure);
for (const r of results) console.log(`event path N=${r.n}: ${r.cpuMsPerEvent} ms CPU per event, ${r.opsPerEvent} kernel ops per event`);
printResult('event-path', results);
