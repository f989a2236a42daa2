// `weft apply` of a Network: its config bytes (flanneld's) and weft's metadata, refused
// when the new ranges would leave existing subnets outside (unless forced).
import { encodeNetworkMeta, networkFromStore, networkRecordsOf } from '../api/convert.js';
import { RefusedError } from '../api/errors.js';
import { networkNameProblem } from '../api/names.js';
import { describeRanges, keyFits, resolveNetwork } from '../api/network.js';
import { hostNetworkOverlaps, networkCollisions, networkSafetyProblems, type OtherNetwork } from '../api/network-safety.js';
import type { NetworkMeta } from '../api/records.js';
import type { NetworkResource } from '../api/types.js';
import { compareKey, type Compare } from '../store/txn.js';
import { checkResourceVersion, describeHolder, PlanProblems, refOf, type Plan, type PlanContext } from './plan.js';
import type { Snapshot } from './snapshot.js';

export function planNetworkApply(snap: Snapshot, res: NetworkResource, ctx: PlanContext): Plan {
  const name = res.metadata.name;
  const ref = refOf('Network', name);
  const configKey = ctx.layout.configKey(name);
  const metaKey = ctx.layout.networkMetaKey(name);
  const liveConfig = snap.configs.get(name);
  const liveMeta = snap.networkMetas.get(name);
  checkResourceVersion('Network', name, res.metadata.resourceVersion, liveConfig);
  const nameProblem = networkNameProblem(name);
  if (nameProblem) throw new PlanProblems([{ field: 'metadata.name', message: nameProblem }]);
  const resolved = resolveNetwork(name, res.spec);
  if (!resolved.config) throw new PlanProblems(resolved.problems);
  const config = resolved.config;
  const unsafe = [
    ...networkSafetyProblems(config),
    ...networkCollisions(name, config, otherNetworks(snap, name)),
    ...hostNetworkOverlaps(config, ctx.hostNetworks ?? []),
  ];
  if (unsafe.length > 0) throw new PlanProblems(unsafe);

  const { config: bytes, leaseTTL } = networkRecordsOf(res.spec);
  const old = liveMeta?.meta;
  const specChanged = !liveConfig || liveConfig.value !== bytes || old?.leaseTTL !== leaseTTL;
  const meta: NetworkMeta = {
    uid: old?.uid || ctx.uid(),
    creationTimestamp: old?.creationTimestamp || ctx.now().toISOString().replace(/\.\d{3}Z$/, 'Z'),
    generation: old ? old.generation + (specChanged ? 1 : 0) : 1,
    ...(res.metadata.labels ? { labels: res.metadata.labels } : {}),
    ...(res.metadata.annotations ? { annotations: res.metadata.annotations } : {}),
    ...(leaseTTL ? { leaseTTL } : {}),
  };
  const metaBytes = encodeNetworkMeta(meta);
  if (liveConfig && !specChanged && liveMeta?.kv.value === metaBytes) {
    return { ref, action: 'unchanged', compares: [], ops: [] };
  }

  const compares: Compare[] = [compareKey(configKey, liveConfig), compareKey(metaKey, liveMeta?.kv)];
  if (liveConfig?.value !== bytes) {
    const misfits = (snap.subnets.get(name) ?? []).filter((s) => !s.subnets || !keyFits(config, s.subnets));
    if (misfits.length > 0 && !ctx.force) {
      const list = misfits.map((s) => `${s.name} (${s.reserved ? 'reserved for' : 'leased by'} ${describeHolder(s)})`);
      throw new RefusedError(
        `${ref}: the new spec leaves ${misfits.length} subnet${misfits.length === 1 ? '' : 's'} outside ${describeRanges(config)}: ` +
          `${list.join(', ')}; use --force to apply anyway (those hosts will lose their subnets)`,
      );
    }
    // The fit check above is only true while no lease appears or moves under the network.
    compares.push({ prefix: ctx.layout.subnetsPrefix(name), unchangedSince: snap.revision });
  }
  // The config is re-put even when its bytes are unchanged so that resourceVersion (its mod
  // revision) moves with every change to the object.
  return {
    ref,
    action: liveConfig ? 'configured' : 'created',
    compares,
    ops: [
      { put: configKey, value: bytes },
      { put: metaKey, value: metaBytes },
    ],
  };
}

/** The other networks in the snapshot whose stored config is usable. */
function otherNetworks(snap: Snapshot, name: string): OtherNetwork[] {
  const out: OtherNetwork[] = [];
  for (const [other, kv] of snap.configs) {
    if (other === name) continue;
    const view = networkFromStore(other, kv, snap.networkMetas.get(other)?.meta, []);
    if (view.config) out.push({ name: other, config: view.config });
  }
  return out;
}
