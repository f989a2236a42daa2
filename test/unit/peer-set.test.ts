// The agent's peer set: selection rules applied per lease change (bad leases, other backends,
// our own key, overlapping subnets), the deltas it hands the dataplane, and the log lines
// that say which peers joined, changed or left. Pure.
import { describe, expect, it } from 'vitest';
import type { LeaseChange } from '../../src/agent/lease-watch.js';
import { peerChangeLines, PeerSet, PEER_LOG_LIMIT } from '../../src/agent/peer-set.js';
import type { Peer } from '../../src/dataplane/types.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { subnetRecord, type SubnetRecord } from '../../src/store/store.js';

const PREFIX = '/coreos.com/network/subnets/';
let revision = 10;

function record(name: string, opts: { ip?: string; mac?: string; node?: string; created?: number; value?: string } = {}): SubnetRecord {
  revision++;
  const value =
    opts.value ??
    JSON.stringify({
      PublicIP: opts.ip ?? '192.0.2.9',
      PublicIPv6: null,
      BackendType: 'vxlan',
      BackendData: { VNI: 1, VtepMAC: opts.mac ?? '02:00:00:00:00:09' },
      ...(opts.node ? { NodeName: opts.node } : {}),
    });
  return subnetRecord('default', PREFIX, { key: PREFIX + name, value, modRevision: revision, createRevision: opts.created ?? revision, version: 1, leaseId: '7' });
}
const added = (r: SubnetRecord): LeaseChange => ({ type: 'added', key: r.kv.key, record: r });
const updated = (r: SubnetRecord, previous: SubnetRecord): LeaseChange => ({ type: 'updated', key: r.kv.key, record: r, previous });
const deleted = (r: SubnetRecord): LeaseChange => ({ type: 'deleted', key: r.kv.key, previous: r });
const deltaKeys = (d: ReadonlyMap<string, Peer | undefined>) => [...d].map(([k, p]) => (p ? `+${k}` : `-${k}`)).sort();

function capture(): { logger: Logger; lines: { msg: string; fields?: Record<string, unknown> }[] } {
  const lines: { msg: string; fields?: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug: () => {},
    info: (msg, fields) => lines.push({ msg, ...(fields ? { fields } : {}) }),
    warn: (msg, fields) => lines.push({ msg, ...(fields ? { fields } : {}) }),
    error: () => {},
    child: () => logger,
  };
  return { logger, lines };
}

describe('peer set', () => {
  it('hands over only what changed since the last take, and names each change for the log', () => {
    const set = new PeerSet(silentLogger, 'vxlan');
    const a = record('10.5.1.0-24', { ip: '192.0.2.1', node: 'h1' });
    const b = record('10.5.2.0-24', { ip: '192.0.2.2' });
    set.apply([added(a), added(b)]);
    const first = set.take();
    expect(deltaKeys(first.delta)).toEqual(['+10.5.1.0-24', '+10.5.2.0-24']);
    expect(first.changes.added.map((p) => [p.key, p.node])).toEqual([[PREFIX + '10.5.1.0-24', 'h1'], [PREFIX + '10.5.2.0-24', undefined]]);
    expect(deltaKeys(set.take().delta)).toEqual([]);

    const b2 = record('10.5.2.0-24', { ip: '192.0.2.2', mac: '02:aa:00:00:00:02' });
    set.apply([updated(b2, b), deleted(a)]);
    const next = set.take();
    expect(deltaKeys(next.delta)).toEqual(['+10.5.2.0-24', '-10.5.1.0-24']);
    expect([next.changes.added.length, next.changes.changed.map((p) => p.vtepMAC), next.changes.removed.map((p) => p.key)]).toEqual([
      0,
      ['02:aa:00:00:00:02'],
      [PREFIX + '10.5.1.0-24'],
    ]);
    // Added and gone again before a pass: nothing to hand over.
    const c = record('10.5.3.0-24');
    set.apply([added(c)]);
    set.apply([deleted(c)]);
    expect(deltaKeys(set.take().delta)).toEqual([]);
    expect(set.size).toBe(1);
  });

  it('leaves out our own key, and puts the old one back when our key changes', () => {
    const set = new PeerSet(silentLogger, 'vxlan');
    const a = record('10.5.1.0-24');
    const b = record('10.5.2.0-24', { ip: '192.0.2.2', mac: '02:00:00:00:00:02' });
    set.setOwnKey(a.kv.key);
    set.apply([added(a), added(b)]);
    expect(deltaKeys(set.take().delta)).toEqual(['+10.5.2.0-24']);
    set.setOwnKey(b.kv.key);
    expect(deltaKeys(set.take().delta)).toEqual(['+10.5.1.0-24', '-10.5.2.0-24']);
  });

  it('logs an unusable lease once per change, and keeps other backends and bad values out', () => {
    const { logger, lines } = capture();
    const set = new PeerSet(logger, 'vxlan');
    const bad = record('10.5.4.0-24', { value: '{"PublicIP":' });
    const hostgw = record('10.5.5.0-24', { value: '{"PublicIP":"192.0.2.5","PublicIPv6":null,"BackendType":"host-gw"}' });
    const badKey = record('not-a-key');
    set.apply([added(bad), added(hostgw), added(badKey)]);
    expect(set.size).toBe(0);
    expect(lines.map((l) => [l.msg, l.fields?.key])).toEqual([
      ['ignoring unusable lease', PREFIX + '10.5.4.0-24'],
      ['ignoring unusable lease', PREFIX + 'not-a-key'],
    ]);
  });

  it('keeps the older of overlapping leases, and the newer once the older is gone', () => {
    const { logger, lines } = capture();
    const set = new PeerSet(logger, 'vxlan');
    const old = record('10.5.1.0-24', { ip: '192.0.2.1', mac: '02:00:00:00:00:01' });
    const wide = record('10.5.0.0-16', { ip: '192.0.2.66', mac: '02:00:00:00:00:66' });
    set.apply([added(wide), added(old)]);
    expect(deltaKeys(set.take().delta)).toEqual(['+10.5.1.0-24']);
    expect(lines).toEqual([{ msg: 'ignoring unusable lease', fields: { key: '10.5.0.0-16', reason: 'subnet 10.5.0.0/16 overlaps the older lease 10.5.1.0-24 (10.5.1.0/24)' } }]);
    set.apply([deleted(old)]);
    expect(deltaKeys(set.take().delta)).toEqual(['+10.5.0.0-16', '-10.5.1.0-24']);
  });

  it('selects what a from-scratch pass over all leases selects, after every random change', () => {
    let seed = 3;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >>> 16) % n;
    };
    const names = ['10.5.0.0-16', '10.5.1.0-24', '10.5.1.0-25', '10.5.1.128-25', '10.5.2.0-24', '10.5.3.0-24', '10.4.0.0-14', '10.6.0.0-24', '10.5.2.0-23', 'junk'];
    const live = new Map<string, SubnetRecord>();
    const set = new PeerSet(silentLogger, 'vxlan');
    const dataplane = new Map<string, Peer>();
    let own: string | undefined;
    for (let round = 0; round < 3000; round++) {
      const changes: LeaseChange[] = [];
      for (let c = 1 + rand(3); c > 0; c--) {
        const name = names[rand(names.length)]!;
        const key = PREFIX + name;
        const old = live.get(key);
        if (old && rand(3) === 0) {
          live.delete(key);
          changes.push(deleted(old));
        } else {
          const r = record(name, { ip: `192.0.2.${rand(250) + 1}`, ...(old && rand(2) === 0 ? { created: old.kv.createRevision } : {}) });
          live.set(key, r);
          changes.push(old ? updated(r, old) : added(r));
        }
      }
      set.apply(changes);
      if (rand(50) === 0) set.setOwnKey((own = PREFIX + names[rand(names.length)]!));
      for (const [k, p] of set.take().delta) {
        if (p) dataplane.set(k, p);
        else dataplane.delete(k);
      }
      // The rule, from scratch: candidates in age order, each kept unless it overlaps one kept before.
      const candidates = [...live.values()]
        .filter((r) => r.subnets && r.cidr && r.lease.ok && r.kv.key !== own)
        .sort((x, y) => x.kv.createRevision - y.kv.createRevision || (x.kv.key < y.kv.key ? -1 : 1));
      const kept: SubnetRecord[] = [];
      for (const r of candidates) if (!kept.some((k) => k.cidr!.overlaps(r.cidr!))) kept.push(r);
      expect([...dataplane.keys()].sort(), `round ${round}`).toEqual(kept.map((r) => r.name).sort());
      expect(set.size).toBe(kept.length);
    }
  });
});

describe('peer change lines', () => {
  const info = (n: number) => ({ key: `${PREFIX}10.5.${n}.0-24`, publicIP: `192.0.2.${n}`, vtepMAC: `02:00:00:00:00:0${n}`, node: `h${n}` });

  it('logs one line per peer up to the limit, with the subject of each', () => {
    expect(peerChangeLines({ added: [info(2)], changed: [], removed: [info(1)] })).toEqual([
      { msg: 'peer added', fields: { key: `${PREFIX}10.5.2.0-24`, peerNode: 'h2', publicIP: '192.0.2.2', vtepMAC: '02:00:00:00:00:02' } },
      { msg: 'peer removed', fields: { key: `${PREFIX}10.5.1.0-24`, peerNode: 'h1', publicIP: '192.0.2.1', vtepMAC: '02:00:00:00:00:01' } },
    ]);
    expect(peerChangeLines({ added: [], removed: [], changed: [] })).toEqual([]);
  });

  it('summarises in one line when more than the limit change at once (a 5,000-peer start)', () => {
    const many = Array.from({ length: PEER_LOG_LIMIT + 1 }, (_, i) => info(i));
    expect(peerChangeLines({ added: many, removed: [], changed: [] })).toEqual([{ msg: 'peers changed', fields: { added: PEER_LOG_LIMIT + 1, removed: 0, changed: 0 } }]);
    expect(peerChangeLines({ added: many.slice(1), removed: [], changed: [] })).toHaveLength(PEER_LOG_LIMIT);
  });
});
