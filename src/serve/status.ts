// Errors as Kubernetes Status objects: the reason and code kubectl and client libraries act on
// (NotFound, AlreadyExists, Conflict, Invalid, Forbidden, Unauthorized, Gone, ServiceUnavailable).
import { ConflictError, NotFoundError, RefusedError, ValidationError } from '../api/errors.js';
import { StoreAuthError, StoreUnavailableError } from '../store/errors.js';
import { PlanProblems } from '../control/plan.js';
import { RevisionCompactedError } from '../store/revisions.js';

export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** An answer that is not a success: it becomes a Status body with this code and reason. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }
}

export function statusOf(err: ApiError): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: err.message,
    reason: err.reason,
    ...(err.details ? { details: err.details } : {}),
    code: err.code,
  };
}

/** What the request was about, for messages in Kubernetes' words ("networks.weft.io \"x\""). */
export interface Subject {
  plural: string;
  kind: string;
  name?: string;
}

const GROUP = 'weft.io';

function qualified(s: Subject): string {
  return `${s.plural}.${GROUP}${s.name !== undefined ? ` "${s.name}"` : ''}`;
}

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
export const notFound = (s: Subject) =>
  new ApiError(404, 'NotFound', `${qualified(s)} not found`, { name: s.name, group: GROUP, kind: s.plural });
export const alreadyExists = (s: Subject) =>
  new ApiError(409, 'AlreadyExists', `${qualified(s)} already exists`, { name: s.name, group: GROUP, kind: s.plural });
export const methodNotAllowed = (message: string) => new ApiError(405, 'MethodNotAllowed', message);
export const unsupportedMediaType = (type: string) =>
  new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/merge-patch+json, application/json-patch+json, application/apply-patch+yaml (got ${type || 'none'})`);

/** 422 with one cause per problem, each naming its field as `weft apply` does. */
export function invalid(s: Subject, problems: { field: string; message: string }[]): ApiError {
  const text = problems.map((p) => (p.field ? `${p.field}: ${p.message}` : p.message));
  return new ApiError(422, 'Invalid', `${s.kind}.${GROUP} "${s.name ?? ''}" is invalid: ${text.length === 1 ? text[0] : `[${text.join(', ')}]`}`, {
    ...(s.name !== undefined ? { name: s.name } : {}),
    group: GROUP,
    kind: s.kind,
    causes: problems.map((p) => ({ reason: 'FieldValueInvalid', message: p.message, ...(p.field ? { field: p.field } : {}) })),
  });
}

/** Maps weft's typed errors (the same ones `weft apply/delete` prints) to Status answers. */
export function toApiError(err: unknown, s: Subject): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof ValidationError) return invalid(s, err.problems);
  if (err instanceof PlanProblems) return invalid(s, err.problems);
  if (err instanceof NotFoundError) return new ApiError(404, 'NotFound', err.message, { name: s.name, group: GROUP, kind: s.plural });
  if (err instanceof ConflictError) return new ApiError(409, 'Conflict', err.message, { name: s.name, group: GROUP, kind: s.plural });
  // Refusals (a Network that still has leases, a spec that strands subnets) are conflicts
  // with the state of the store: the request is well-formed, the store says not now.
  if (err instanceof RefusedError) return new ApiError(409, 'Conflict', err.message, { name: s.name, group: GROUP, kind: s.plural });
  if (err instanceof RevisionCompactedError) return new ApiError(410, 'Expired', `too old resource version: ${err.message}`);
  if (err instanceof StoreUnavailableError) {
    return new ApiError(503, 'ServiceUnavailable', err.message.replace(/\.? ?Resolution note:[\s\S]*$/, ''), { retryAfterSeconds: 1 });
  }
  if (err instanceof StoreAuthError) return new ApiError(500, 'InternalError', err.message);
  return new ApiError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`);
}
