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
  return {
    result,
    report: {
      operations: result.operations,
      failures: result.failures,
      byKind: result.byKind,
      skipped: parts.skips.count,
      peersProgrammed: Math.max(0, parts.desired.modelled - result.unrouted),
      ms: performance.now() - startedAt,
      kernelMs: result.kernelMs,
    },
  };
}
