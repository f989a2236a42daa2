// What every plan is: a reference, an action, and one transaction as data (compares + ops),
// or typed errors. Shared by the apply and delete planners.
import type { HostNetwork } from '../api/network-safety.js';
import { ConflictError, NotFoundError } from '../api/errors.js';
import type { KV, SubnetRecord } from '../api/records.js';
import type { Kind } from '../api/types.js';
import type { Layout } from '../store/layout.js';
import type { Compare, TxnOp } from '../store/txn.js';

export type { Compare, TxnOp };

export type Action = 'created' | 'configured' | 'unchanged' | 'deleted';

export interface Plan {
  /** "network.weft.io/default" */
  ref: string;
  action: Action;
  compares: Compare[];
  ops: TxnOp[];
}

export interface PlanContext {
  layout: Layout;
  force: boolean;
  now: () => Date;
  uid: () => string;
  /** The networks of the applying host's interfaces: a Network overlapping one is refused. */
  hostNetworks?: readonly HostNetwork[];
}

/** Problems without a location; the caller knows the document they came from. */
export class PlanProblems extends Error {
  constructor(readonly problems: { field: string; message: string }[]) {
    super(problems.map((p) => `${p.field}: ${p.message}`).join('; '));
  }
}

export function refOf(kind: Kind | 'Node', name: string): string {
  return `${kind.toLowerCase()}.weft.io/${name}`;
}

export function plural(kind: Kind): string {
  return `${kind.toLowerCase()}s.weft.io`;
}

export function checkResourceVersion(kind: Kind, name: string, given: string | undefined, live: KV | undefined): void {
  if (given === undefined) return;
  if (!live) {
    throw new ConflictError(
      `${plural(kind)} "${name}": metadata.resourceVersion ${given} was given but the object does not exist; remove resourceVersion to create it`,
    );
  }
  if (String(live.modRevision) !== given) {
    throw new ConflictError(
      `${plural(kind)} "${name}": the object has been modified (resourceVersion ${given} given, live is ${live.modRevision}); get it again and re-apply your changes`,
    );
  }
}

export function describeHolder(r: SubnetRecord): string {
  if (!r.lease.ok) return 'an unreadable value';
  const v = r.lease.value;
  return v.nodeName ? `node ${v.nodeName} (${v.publicIP})` : v.publicIP;
}

export function notFound(kind: Kind, name: string, network?: string): NotFoundError {
  return new NotFoundError(`${plural(kind)} "${name}" not found${network ? ` in network "${network}"` : ''}`);
}
