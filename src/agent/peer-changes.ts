// Which peers joined, left or changed between two reconciles, and the log lines that say so.
//
// The reconcile hands the full peer list each time; a peer whose lease did not change is the
// same object as before (PeerSelector caches them), so the diff is one Map lookup per peer.
// The lines are pure data, so the summarising rule is unit tested without a logger: one line
// per peer when a few change, one summary line when many do (a 5,000-peer start is one line).
import type { Peer } from '../dataplane/types.js';
import type { Fields } from '../log.js';

export interface PeerInfo {
  /** The lease's etcd key. */
  key: string;
  publicIP: string;
  vtepMAC?: string;
  /** The peer's node name, when its lease carries one. */
  node?: string;
}

export interface PeerChanges {
  added: PeerInfo[];
  removed: PeerInfo[];
  /** Same lease key, new public IP or VTEP MAC (a host that came back with a new device). */
  changed: PeerInfo[];
}

/** Above this many changes in one reconcile, one summary line instead of one per peer. */
export const PEER_LOG_LIMIT = 20;

export class PeerSetTracker {
  private readonly known = new Map<string, { peer: Peer; info: PeerInfo; gen: number }>();
  private gen = 0;

  /** `describe` is called only for peers that are new or changed. */
  diff(peers: readonly Peer[], describe: (peer: Peer) => PeerInfo): PeerChanges {
    const gen = ++this.gen;
    const out: PeerChanges = { added: [], removed: [], changed: [] };
    for (const peer of peers) {
      const k = this.known.get(peer.key);
      if (k && k.peer === peer) {
        k.gen = gen;
        continue;
      }
      const info = describe(peer);
      if (!k) out.added.push(info);
      else if (k.info.publicIP !== info.publicIP || k.info.vtepMAC !== info.vtepMAC) out.changed.push(info);
      this.known.set(peer.key, { peer, info, gen });
    }
    if (this.known.size > peers.length) {
      for (const [key, k] of this.known) {
        if (k.gen !== gen) {
          this.known.delete(key);
          out.removed.push(k.info);
        }
      }
    }
    return out;
  }
}

export interface LogLine {
  msg: string;
  fields: Fields;
}

/** The info lines for one reconcile's peer changes. */
export function peerChangeLines(c: PeerChanges, limit = PEER_LOG_LIMIT): LogLine[] {
  const total = c.added.length + c.removed.length + c.changed.length;
  if (total === 0) return [];
  if (total > limit) {
    return [{ msg: 'peers changed', fields: { added: c.added.length, removed: c.removed.length, changed: c.changed.length } }];
  }
  const subject = (p: PeerInfo): Fields => ({
    key: p.key,
    ...(p.node !== undefined ? { peerNode: p.node } : {}),
    publicIP: p.publicIP,
    ...(p.vtepMAC !== undefined ? { vtepMAC: p.vtepMAC } : {}),
  });
  return [
    ...c.added.map((p) => ({ msg: 'peer added', fields: subject(p) })),
    ...c.changed.map((p) => ({ msg: 'peer changed', fields: subject(p) })),
    ...c.removed.map((p) => ({ msg: 'peer removed', fields: subject(p) })),
  ];
}
