// The CLI's writes. Each change to one object is ONE etcd transaction whose compares pin
// every key the decision was based on (mod revision, or version 0 for "absent"), so two
// racing writers cannot both win: the loser gets a ConflictError and nothing is half done.
//
// Shape: read a snapshot of the whole prefix (one range, one revision), plan against it
// (pure: apply-network.ts, apply-subnet.ts, delete.ts; compares + ops, or typed errors), then commit. A multi-document apply plans every
// object against a simulated snapshot first, so an invalid document writes nothing.
import { randomUUID } from 'node:crypto';
import { parseIp, type IpAddr, type IpNet } from '../alloc/cidr.js';
import { keyNameOfMeta, leaseFromStore, networkFromStore, resourceNameOf, type NetworkView } from '../api/convert.js';
import { ConflictError, NotFoundError, RefusedError, ValidationError, type FieldProblem } from '../api/errors.js';
import type { ManifestObject } from '../api/manifest.js';
import type { HostNetwork } from '../api/network-safety.js';
import { screenPeer } from '../api/peer-screen.js';
import type { NodeStatusRecord, SubnetRecord } from '../api/records.js';
import type { Kind, LeaseResource, Resource, SubnetResource } from '../api/types.js';
import type { Layout } from '../store/layout.js';
import type { Store } from '../store/store.js';
import { simulate, type TxnOp } from '../store/txn.js';
import { planNetworkApply } from './apply-network.js';
import { planSubnetApply } from './apply-subnet.js';
import { planDelete, type DeleteTarget } from './delete.js';
import { notFound, PlanProblems, type Action, type Plan, type PlanContext } from './plan.js';
import { indexSnapshot, sortNetworks, type Snapshot } from './snapshot.js';
import { networkViews, nodesByLease, nodeViews, subnetViews, type NodeView } from './views.js';

// ---- the imperative shell ---------------------------------------------------------------

export interface ApplyResult {
  ref: string;
  action: Action;
}

export interface DiffEntry {
  ref: string;
  live?: Resource;
  desired: Resource;
}

/** A lease with what -o wide and describe add to it. */
export interface LeaseRow {
  lease: LeaseResource;
  record: SubnetRecord;
  /** Seconds left on and granted to its etcd lease; absent for a reservation or an expired lease. */
  ttl?: { ttl: number; granted: number };
  /** The status record of the node holding it, if that node publishes one. */
  node?: NodeStatusRecord;
}

export interface LeaseDescription extends LeaseRow {
  /** The Subnet that reserves this key, if any. */
  reservation?: { name: string; node?: string; publicIP?: string };
  /**
   * Why every agent leaves this lease out (the peer screen's host-independent part, per
   * family): "IPv4: public IP 224.0.0.1 is in the multicast range 224.0.0.0/4".
   */
  screened?: string[];
}

export interface ResourceStoreOptions {
  now?: () => Date;
  uid?: () => string;
  /** The networks of this host's interfaces (apply refuses a Network overlapping one). */
  hostNetworks?: () => HostNetwork[];
}

const KIND_ORDER: Record<Kind, number> = { Network: 0, Subnet: 1, Lease: 2 };

export class ResourceStore {
  private readonly now: () => Date;
  private readonly uid: () => string;

  constructor(
    readonly store: Store,
    opts: ResourceStoreOptions = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.uid = opts.uid ?? randomUUID;
    this.hostNetworks = opts.hostNetworks ?? (() => []);
  }
  private readonly hostNetworks: () => HostNetwork[];

  get layout(): Layout {
    return this.store.layout;
  }

  /** Every key under the prefix, now or at an earlier revision (`weft serve`'s watches). */
  async snapshot(atRevision?: number): Promise<Snapshot> {
    const { kvs, revision } = await this.store.list(this.layout.prefix + '/', atRevision !== undefined ? { revision: atRevision } : {});
    return indexSnapshot(this.layout, atRevision ?? revision, new Map(kvs.map((kv) => [kv.key, kv])));
  }

  ctx(force: boolean): PlanContext {
    return { layout: this.layout, force, now: this.now, uid: this.uid, hostNetworks: this.hostNetworks() };
  }

  /** The plan for applying one validated object (Leases are refused: agents write them). */
  planApply(snap: Snapshot, obj: ManifestObject, ctx: PlanContext): Plan {
    const r = obj.resource;
    if (r.kind === 'Network') return planNetworkApply(snap, r, ctx);
    if (r.kind === 'Subnet') return planSubnetApply(snap, r, ctx);
    throw new PlanProblems([
      {
        field: 'kind',
        message: 'Leases are written by agents and cannot be applied; reserve a subnet with kind Subnet instead',
      },
    ]);
  }

  /**
   * Plans every object against one snapshot (each seeing the ones before it), so nothing
   * is written unless all of them are valid. Networks go before Subnets.
   */
  private async planAll(objects: ManifestObject[], force: boolean): Promise<{ plans: Plan[]; snaps: Snapshot[] }> {
    const ordered = [...objects].sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
    let snap = await this.snapshot();
    const ctx = this.ctx(force);
    const problems: FieldProblem[] = [];
    const others: Error[] = [];
    const plans: Plan[] = [];
    const snaps: Snapshot[] = [];
    for (const obj of ordered) {
      try {
        const plan = this.planApply(snap, obj, ctx);
        plans.push(plan);
        snap = indexSnapshot(this.layout, snap.revision, simulate(snap.kvs, plan.ops, snap.revision + 1));
        snaps.push(snap);
      } catch (err) {
        if (err instanceof PlanProblems) {
          for (const p of err.problems) {
            problems.push({ file: obj.file, line: obj.lineOf(p.field), object: obj.ref, field: p.field, message: p.message });
          }
        } else if (err instanceof ConflictError || err instanceof RefusedError) {
          others.push(err);
          problems.push({ file: obj.file, line: obj.line, object: obj.ref, field: '', message: err.message });
        } else {
          throw err;
        }
      }
    }
    if (problems.length > 0) {
      if (others.length === problems.length) throw others[0]!;
      throw new ValidationError(problems);
    }
    return { plans, snaps };
  }

  async apply(
    objects: ManifestObject[],
    opts: { dryRun?: boolean; force?: boolean; onResult?: (r: ApplyResult) => void } = {},
  ): Promise<ApplyResult[]> {
    const force = opts.force ?? false;
    const { plans } = await this.planAll(objects, force);
    const results: ApplyResult[] = [];
    const report = (r: ApplyResult) => {
      results.push(r);
      opts.onResult?.(r);
    };
    if (opts.dryRun) {
      for (const p of plans) report({ ref: p.ref, action: p.action });
      return results;
    }
    const ordered = [...objects].sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
    const ctx = this.ctx(force);
    for (const obj of ordered) {
      // Re-plan on fresh state: earlier objects in this batch changed it.
      const snap = await this.snapshot();
      let plan: Plan;
      try {
        plan = this.planApply(snap, obj, ctx);
      } catch (err) {
        if (err instanceof PlanProblems) {
          throw new ConflictError(`${obj.ref}: the store changed while applying: ${err.message}`);
        }
        throw err;
      }
      if (plan.action !== 'unchanged') await this.commit(plan);
      report({ ref: plan.ref, action: plan.action });
    }
    return results;
  }

  /** Live and desired forms of each object, for `weft diff`. */
  async diff(objects: ManifestObject[]): Promise<DiffEntry[]> {
    const { plans, snaps } = await this.planAll(objects, true);
    const before = await this.snapshot();
    const ordered = [...objects].sort((a, b) => KIND_ORDER[a.kind] - KIND_ORDER[b.kind]);
    return ordered.map((obj, i) => ({
      ref: plans[i]!.ref,
      ...optionalLive(this.view(before, obj.kind, obj.name)),
      desired: this.view(snaps[i]!, obj.kind, obj.name)!,
    }));
  }

  /** A Network or Subnet as the snapshot shows it. */
  view(snap: Snapshot, kind: Kind, name: string): Resource | undefined {
    if (kind === 'Network') {
      return networkViews(snap).find((v) => v.resource.metadata.name === name)?.resource;
    }
    return subnetViews(snap, this.layout).find((s) => s.metadata.name === name);
  }

  async delete(
    targets: DeleteTarget[],
    opts: { force?: boolean; ignoreNotFound?: boolean; onResult?: (r: ApplyResult) => void; onError?: (e: Error) => void } = {},
  ): Promise<{ results: ApplyResult[]; errors: Error[] }> {
    const ctx = this.ctx(opts.force ?? false);
    const ordered = [...targets].sort((a, b) => KIND_ORDER[b.kind] - KIND_ORDER[a.kind]);
    const results: ApplyResult[] = [];
    const errors: Error[] = [];
    for (const t of ordered) {
      try {
        const snap = await this.snapshot();
        const plan = planDelete(snap, t, ctx);
        await this.commit(plan);
        const r = { ref: plan.ref, action: plan.action };
        results.push(r);
        opts.onResult?.(r);
      } catch (err) {
        if (err instanceof NotFoundError && opts.ignoreNotFound) continue;
        if (!(err instanceof Error) || !(err instanceof NotFoundError || err instanceof RefusedError || err instanceof ConflictError)) {
          throw err;
        }
        errors.push(err);
        opts.onError?.(err);
      }
    }
    return { results, errors };
  }

  /** Commits one plan as one transaction; a failed compare is a ConflictError. */
  async commit(plan: Plan): Promise<void> {
    if (await this.store.commit(plan.compares, plan.ops)) return;
    // etcd3 retries writes whose reply was lost: a commit that landed can come back as a
    // failed compare. If the store now holds exactly what we meant to write, we won.
    const now = await this.snapshot();
    if (plan.ops.every((op) => landed(now, op))) return;
    throw new ConflictError(`${plan.ref}: changed by someone else while this command ran; read it again and retry`);
  }

  // ---- reads for `weft get` -------------------------------------------------------------

  async getNetworks(name?: string): Promise<NetworkView[]> {
    const views = networkViews(await this.snapshot());
    if (name === undefined) return views;
    const v = views.find((x) => x.resource.metadata.name === name);
    if (!v) throw notFound('Network', name);
    return [v];
  }

  async getSubnets(name?: string, network?: string): Promise<SubnetResource[]> {
    const all = subnetViews(await this.snapshot(), this.layout).filter((s) => network === undefined || s.spec.network === network);
    if (name === undefined) return all;
    const found = all.filter((s) => s.metadata.name === name);
    if (found.length === 0) throw notFound('Subnet', name, network);
    if (found.length > 1) {
      throw new RefusedError(`subnet "${name}" exists in networks ${found.map((s) => s.spec.network).join(', ')}; choose one with --network`);
    }
    return found;
  }

  async getLeases(name?: string, network?: string): Promise<LeaseResource[]> {
    return (await this.getLeaseRows(name, network)).map((r) => r.lease);
  }

  /** Leases with their holders' node status records (for -o wide). */
  async getLeaseRows(name?: string, network?: string): Promise<LeaseRow[]> {
    return this.leaseRowsOf(await this.snapshot(), name, network);
  }

  /** Lease rows of one snapshot (by name and network when given). */
  async leaseRowsOf(snap: Snapshot, name: string | undefined, network: string | undefined): Promise<LeaseRow[]> {
    const records: SubnetRecord[] = [];
    for (const net of sortNetworks([...snap.subnets.keys()])) {
      if (network !== undefined && net !== network) continue;
      // By address, as an operator reads subnets (10.5.3.0 before 10.5.12.0); IPv6-only keys
      // after those, bad keys last.
      const byAddress = [...snap.subnets.get(net)!].sort(
        (a, b) =>
          (a.cidr?.first ?? Infinity) - (b.cidr?.first ?? Infinity) ||
          compareBig(a.subnets?.ipv6?.first, b.subnets?.ipv6?.first) ||
          (a.name < b.name ? -1 : 1),
      );
      for (const r of byAddress) if (name === undefined || r.name === name || resourceNameOf(r) === name) records.push(r);
    }
    if (name !== undefined && records.length === 0) throw notFound('Lease', name, network);
    const now = this.now().getTime();
    const ttls = await this.store.leaseTimes(records.filter((r) => !r.reserved).map((r) => r.kv.leaseId));
    const created = new Map<string, string>();
    for (const m of snap.subnetMetas.values()) {
      if (m.meta) created.set(this.layout.subnetKey(m.meta.network, keyNameOfMeta(m.meta)), m.meta.creationTimestamp);
    }
    const nodes = nodesByLease(snap, this.layout);
    return records.map((r) => {
      const t = ttls.get(r.kv.leaseId);
      // A lease's age is that of its current etcd lease (flannel renews by granting anew).
      const since = t ? new Date(now - (t.granted - t.ttl) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
      const node = nodes.get(r.kv.key);
      return {
        lease: leaseFromStore(r, t?.ttl, now, r.reserved ? created.get(r.kv.key) : since),
        record: r,
        ...(t ? { ttl: t } : {}),
        ...(node ? { node } : {}),
      };
    });
  }

  /** Node status records as Nodes (also those whose lease is gone). */
  async getNodes(name?: string, network?: string): Promise<NodeView[]> {
    const all = nodeViews(await this.snapshot(), this.layout).filter((v) => network === undefined || v.resource.status.network === network);
    if (name === undefined) return all;
    const found = all.filter((v) => v.resource.metadata.name === name);
    if (found.length === 0) throw new NotFoundError(`nodes.weft.io "${name}" not found${network ? ` in network "${network}"` : ''} (an agent publishes its node while it runs)`);
    if (found.length > 1) {
      throw new RefusedError(`node "${name}" exists in networks ${found.map((v) => v.resource.status.network).join(', ')}; choose one with --network`);
    }
    return found;
  }

  /** Everything about one lease: the key, its etcd lease, its reservation and its holder's status. */
  async describeLease(name: string, network?: string): Promise<LeaseDescription> {
    const snap = await this.snapshot();
    const rows = await this.leaseRowsOf(snap, name, network);
    if (rows.length > 1) {
      throw new RefusedError(`lease "${name}" exists in networks ${rows.map((r) => r.record.network).join(', ')}; choose one with --network`);
    }
    const row = rows[0]!;
    let reservation: LeaseDescription['reservation'];
    for (const [subnet, m] of snap.subnetMetas) {
      if (m.meta && m.meta.network === row.record.network && keyNameOfMeta(m.meta) === row.record.name) {
        reservation = { name: subnet, ...(m.meta.node !== undefined ? { node: m.meta.node } : {}), ...(m.meta.publicIP !== undefined ? { publicIP: m.meta.publicIP } : {}) };
      }
    }
    // No record names this lease: show the record of the node the lease names, if it has one
    // (unreadable, or reporting another lease).
    const named = row.record.lease.ok ? row.record.lease.value.nodeName : undefined;
    const node = row.node ?? (named !== undefined ? snap.nodes.find((n) => n.network === row.record.network && n.name === named) : undefined);
    const screened = screenLease(snap, row.record);
    return { ...row, ...(reservation ? { reservation } : {}), ...(node ? { node } : {}), ...(screened.length ? { screened } : {}) };
  }

}

/** The peer screen's verdicts on a lease that agents would route (api/peer-screen.ts), without a host's part. */
function screenLease(snap: Snapshot, r: SubnetRecord): string[] {
  const kv = snap.configs.get(r.network);
  if (!kv || !r.lease.ok || !r.lease.value.backendType || !r.subnets) return [];
  const config = networkFromStore(r.network, kv, snap.networkMetas.get(r.network)?.meta, []).config;
  if (!config) return [];
  const v = r.lease.value;
  const out: string[] = [];
  const check = (family: string, subnetLen: number, subnet: IpNet | undefined, publicIP: IpAddr | undefined) => {
    if (!subnet || !publicIP) return;
    const s = screenPeer({ subnetLen }, subnet, publicIP);
    if (s) out.push(`IPv${family}: ${s.message} (${s.reason})`);
  };
  if (config.ipv4) check('4', config.ipv4.subnetLen, r.subnets.ipv4, parseIp(v.publicIP));
  if (config.ipv6) check('6', config.ipv6.subnetLen, r.subnets.ipv6, parseIp(v.publicIPv6));
  return out;
}

/** Orders absent values last. */
function compareBig(a: bigint | undefined, b: bigint | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a < b ? -1 : 1;
}

function optionalLive(r: Resource | undefined): { live?: Resource } {
  return r ? { live: r } : {};
}

function landed(snap: Snapshot, op: TxnOp): boolean {
  if ('put' in op) return snap.kvs.get(op.put)?.value === op.value;
  if ('delete' in op) return !snap.kvs.has(op.delete);
  return ![...snap.kvs.keys()].some((k) => k.startsWith(op.deletePrefix));
}
