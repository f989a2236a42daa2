import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';
import { peerChangeLines, PeerSetTracker, PEER_LOG_LIMIT, type PeerInfo } from '../../src/agent/peer-changes.js';
import type { Peer } from '../../src/dataplane/types.js';

const peer = (n: number, mac = `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`): Peer => ({
  key: `10.5.${n}.0-24`,
  subnet: Cidr.parse(`10.5.${n}.0/24`)!,
  publicIP: Ipv4.parse(`192.0.2.${n}`)!,
  backendType: 'vxlan',
  vtepMAC: mac,
});
const describePeer = (p: Peer): PeerInfo => ({ key: p.key, publicIP: p.publicIP.toString(), ...(p.vtepMAC ? { vtepMAC: p.vtepMAC } : {}), node: `h${p.publicIP.toString().split('.')[3]}` });
const keys = (ps: PeerInfo[]) => ps.map((p) => p.key);

describe('peer set changes', () => {
  it('reports added, removed and changed peers, and nothing for the same objects again', () => {
    const t = new PeerSetTracker();
    const [p1, p2, p3] = [peer(1), peer(2), peer(3)];
    expect(keys(t.diff([p1!, p2!], describePeer).added)).toEqual(['10.5.1.0-24', '10.5.2.0-24']);
    expect(t.diff([p1!, p2!], describePeer)).toEqual({ added: [], removed: [], changed: [] });
    const next = t.diff([p2!, p3!], describePeer);
    expect([keys(next.added), keys(next.removed), keys(next.changed)]).toEqual([['10.5.3.0-24'], ['10.5.1.0-24'], []]);
    // The host behind 10.5.2.0/24 came back with a new VTEP MAC: a new Peer object, changed.
    const moved = t.diff([peer(2, '02:aa:00:00:00:02'), p3!], describePeer);
    expect([keys(moved.added), keys(moved.removed), keys(moved.changed)]).toEqual([[], [], ['10.5.2.0-24']]);
    // A new object with the same values (a re-list) is no change.
    expect(t.diff([peer(2, '02:aa:00:00:00:02'), peer(3)], describePeer)).toEqual({ added: [], removed: [], changed: [] });
  });

  it('logs one line per peer up to the limit, with the subject of each', () => {
    const t = new PeerSetTracker();
    t.diff([peer(1)], describePeer);
    const lines = peerChangeLines(t.diff([peer(2), peer(3)], describePeer));
    expect(lines).toEqual([
      { msg: 'peer added', fields: { key: '10.5.2.0-24', peerNode: 'h2', publicIP: '192.0.2.2', vtepMAC: '02:00:00:00:00:02' } },
      { msg: 'peer added', fields: { key: '10.5.3.0-24', peerNode: 'h3', publicIP: '192.0.2.3', vtepMAC: '02:00:00:00:00:03' } },
      { msg: 'peer removed', fields: { key: '10.5.1.0-24', peerNode: 'h1', publicIP: '192.0.2.1', vtepMAC: '02:00:00:00:00:01' } },
    ]);
    expect(peerChangeLines({ added: [], removed: [], changed: [] })).toEqual([]);
  });

  it('summarises in one line when more than the limit change at once (a 5,000-peer start)', () => {
    const many = Array.from({ length: 5000 }, (_, i) => peer(i % 250, `02:00:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`));
    const unique = many.map((p, i) => ({ ...p, key: `k${i}` }));
    const t = new PeerSetTracker();
    expect(peerChangeLines(t.diff(unique, describePeer))).toEqual([{ msg: 'peers changed', fields: { added: 5000, removed: 0, changed: 0 } }]);
    // Exactly the limit still gets one line each; one more gets the summary.
    const atLimit = peerChangeLines(t.diff(unique.slice(PEER_LOG_LIMIT), describePeer));
    expect(atLimit).toHaveLength(PEER_LOG_LIMIT);
    expect(atLimit.every((l) => l.msg === 'peer removed')).toBe(true);
    expect(peerChangeLines(t.diff(unique.slice(2 * PEER_LOG_LIMIT + 1), describePeer))).toEqual([
      { msg: 'peers changed', fields: { added: 0, removed: PEER_LOG_LIMIT + 1, changed: 0 } },
    ]);
  });
});
