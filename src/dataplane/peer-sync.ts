// The part of a reconcile every backend shares: model the peers (incrementally unless full),
// report the ones left out, converge the kernel, and count the outcome. The backends differ
// only in what they set up around it (a vxlan device, or nothing for host-gw).
import type { ConvergeResult, Converger } from './converger.js';
import type { DesiredTracker } from './desired.js';
import type { ModelContext } from './model.js';
import type { SkipReporter } from './skips.js';
import type { Peer, ReconcileReport } from './types.js';

export interface PeerSync {
  desired: DesiredTracker;
  skips: SkipReporter;
  converger: Converger;
}

/** One pass; `startedAt` is the backend call's performance.now(), so `ms` covers its setup too. */
export async function syncPeers(
  parts: PeerSync,
  ctx: ModelContext,
  peers: readonly Peer[],
  full: boolean,
  startedAt: number,
): Promise<{ result: ConvergeResult; report: ReconcileReport }> {
  const d = parts.desired.update(ctx, peers, full);
  if (d.full) parts.skips.report(d.skips as { key: string; reason: string }[]);
  else parts.skips.update(d.skips);
  const result = await parts.converger.converge(d.state, full, d.touched);
  parts.skips.reportRouteConflicts(conflictsByPeer(result.conflicts, peers));
  return {
    result,
    report: {
      operations: result.operations,
      failures: result.failures,
      byKind: result.byKind,
      skipped: parts.skips.count,
      routeConflicts: parts.skips.routeConflicts,
      peersProgrammed: Math.max(0, parts.desired.modelled - result.unrouted - result.conflicts.length),
      ms: performance.now() - startedAt,
      kernelMs: result.kernelMs,
    },
  };
}

/** Route conflicts by the lease key of the peer whose route it is (rare: a pass over the peers only then). */
function conflictsByPeer(conflicts: ConvergeResult['conflicts'], peers: readonly Peer[]): { key: string; reason: string }[] {
  if (conflicts.length === 0) return [];
  const bySubnet = new Map(peers.map((p) => [p.subnet.toString(), p.key]));
  return conflicts.map(({ route, by }) => ({
    key: bySubnet.get(route.dst.toString()) ?? route.dst.toString(),
    reason: `a route to ${by.dst} that weft did not create holds it (${[by.type !== 'unicast' ? by.type : '', by.dev ? `dev ${by.dev}` : '', `proto ${by.proto ?? 'unknown'}`].filter(Boolean).join(' ')}); leaving that route alone`,
  }));
}
