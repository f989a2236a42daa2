// create (POST), update (PUT), patch (merge, JSON patch, server-side apply): each request's
// object is validated by `weft apply`'s checks (objects.ts), planned by the same planner and
// committed as the same one transaction, with the object's managedFields record added to it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import jsonPatch from 'fast-json-patch';
import mergePatch from 'json-merge-patch';
import { ConflictError, RefusedError } from '../api/errors.js';
import type { ManifestObject } from '../api/manifest.js';
import type { Kind, Printable } from '../api/types.js';
import { indexSnapshot } from '../control/snapshot.js';
import { simulate, type TxnOp } from '../store/txn.js';
import type { ServeContext } from './context.js';
import { listKind, type ServedResource } from './kinds.js';
import { applyConfig, parseManagedRecord, recordUpdate, type ManagedFieldsEntry } from './managed-fields.js';
import { cleanObject, decodeBody, fieldValidationOf, isObject, prepare, type Json } from './objects.js';
import { findIndex, managedKey, readState } from './read.js';
import { readBody, sendJson, warningHeaders } from './respond.js';
import { alreadyExists, ApiError, badRequest, notFound, toApiError, unsupportedMediaType } from './status.js';

/** dryRun=All, from the query or (DELETE) the body. */
export function isDryRun(values: unknown): boolean {
  const list = Array.isArray(values) ? values : [values];
  for (const v of list) {
    if (v === null || v === undefined || v === '') continue;
    if (v !== 'All') throw badRequest(`dryRun must be All, got ${JSON.stringify(v)}`);
    return true;
  }
  return false;
}

/** The manager a change is recorded for: ?fieldManager, else the client's name. */
function managerOf(req: IncomingMessage, url: URL): string {
  const given = url.searchParams.get('fieldManager');
  if (given) {
    if (given.length > 128 || /[\x00-\x1f\x7f]/.test(given)) throw badRequest('fieldManager must be at most 128 printable characters');
    return given;
  }
  const agent = (req.headers['user-agent'] ?? 'unknown').split('/')[0]!.replace(/[^\x20-\x7e]/g, '').slice(0, 128);
  return agent || 'unknown';
}

interface Live {
  object: Json | undefined;
  entries: ManagedFieldsEntry[];
}

async function live(ctx: ServeContext, r: ServedResource, name: string): Promise<Live> {
  const { list, snap } = await readState(ctx, r);
  const i = findIndex(list, r, name);
  if (i === undefined) return { object: undefined, entries: [] };
  const object = structuredClone(list.items[i]!) as unknown as Json;
  const meta = object.metadata as Json;
  delete meta.managedFields;
  return { object, entries: parseManagedRecord(snap.kvs.get(managedKey(ctx, r, name))?.value, meta.uid as string | undefined) };
}

/**
 * Plans the object against a fresh snapshot and commits it with its managedFields record in
 * the same transaction (or, for a dry run, shows the object the plan would make).
 */
async function commit(ctx: ServeContext, r: ServedResource, manifest: ManifestObject, entries: ManagedFieldsEntry[], dryRun: boolean): Promise<Printable> {
  const rs = ctx.rs;
  const snap = await rs.snapshot();
  let plan;
  try {
    plan = rs.planApply(snap, manifest, rs.ctx(false));
  } catch (err) {
    if (err instanceof RefusedError && /--force/.test(err.message)) {
      throw new RefusedError(`${err.message.replace(/; use --force to apply anyway.*$/, '')}; refused: the API has no override for this, \`weft apply --force\` has (those hosts will lose their subnets)`);
    }
    throw err;
  }
  const after = indexSnapshot(rs.layout, snap.revision, simulate(snap.kvs, plan.ops, snap.revision + 1));
  const view = rs.view(after, manifest.kind as Kind, manifest.name)!;
  const key = managedKey(ctx, r, manifest.name);
  const record = JSON.stringify({ uid: view.metadata.uid, entries });
  const ops: TxnOp[] = snap.kvs.get(key)?.value === record ? [] : [{ put: key, value: record }];
  if (!dryRun) {
    if (plan.ops.length || ops.length) await rs.commit({ ...plan, ops: [...plan.ops, ...ops] });
    const { list } = await readState(ctx, r);
    const i = findIndex(list, r, manifest.name);
    if (i !== undefined) return list.items[i]!;
  }
  const shown = await listKind(rs, indexSnapshot(rs.layout, snap.revision, simulate(after.kvs, ops, snap.revision + 1)), r.kind, ctx.now().getTime());
  const obj = shown.items.find((o) => o.metadata.name === manifest.name) ?? view;
  return (entries.length ? { ...obj, metadata: { ...obj.metadata, managedFields: entries } } : obj) as Printable;
}

function subject(r: ServedResource, name?: string) {
  return { plural: r.plural, kind: r.kind, ...(name !== undefined ? { name } : {}) };
}

function writable(r: ServedResource, verb: 'create' | 'update' | 'patch'): void {
  if (!r.verbs.includes(verb)) {
    throw new ApiError(405, 'MethodNotAllowed', `${r.plural}.weft.io do not support ${verb}: ${r.kind === 'Lease' ? 'agents write leases; reserve a subnet with a Subnet instead' : 'nodes are published by their agents'}`);
  }
}

export async function handleCreate(ctx: ServeContext, r: ServedResource, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  writable(r, 'create');
  const raw = decodeBody(await readBody(req), req.headers['content-type'] ?? 'application/json');
  const name = isObject(raw) && isObject(raw.metadata) && typeof raw.metadata.name === 'string' ? raw.metadata.name : undefined;
  if (name === undefined) throw new ApiError(422, 'Invalid', `${r.kind}.weft.io "" is invalid: metadata.name: Required value: name is required (generateName is not supported)`, { group: 'weft.io', kind: r.kind, causes: [{ reason: 'FieldValueRequired', message: 'Required value: name is required', field: 'metadata.name' }] });
  const dryRun = isDryRun(url.searchParams.getAll('dryRun'));
  const { manifest, warnings } = prepare(raw, r, fieldValidationOf(url.searchParams.get('fieldValidation')));
  if (manifest.resource.metadata.resourceVersion !== undefined) throw badRequest('resourceVersion should not be set on objects to be created');
  if ((await live(ctx, r, name)).object) throw alreadyExists(subject(r, name));
  const entries = recordUpdate([], managerOf(req, url), {}, manifest.resource, ctx.now());
  let obj: Printable;
  try {
    obj = await commit(ctx, r, manifest, entries, dryRun);
  } catch (err) {
    // The route knows no name for a POST: name the object from its body.
    throw toApiError(err, subject(r, name));
  }
  sendJson(res, 201, obj, warningHeaders(warnings));
}

export async function handleUpdate(ctx: ServeContext, r: ServedResource, name: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  writable(r, 'update');
  const raw = decodeBody(await readBody(req), req.headers['content-type'] ?? 'application/json');
  const given = isObject(raw) && isObject(raw.metadata) ? raw.metadata.name : undefined;
  if (given !== name) throw badRequest(`the name of the object (${JSON.stringify(given)}) does not match the name on the URL (${JSON.stringify(name)})`);
  const dryRun = isDryRun(url.searchParams.getAll('dryRun'));
  const { manifest, warnings } = prepare(raw, r, fieldValidationOf(url.searchParams.get('fieldValidation')));
  if (manifest.resource.metadata.resourceVersion === undefined) {
    throw new ApiError(422, 'Invalid', `${r.kind}.weft.io "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`, {
      name, group: 'weft.io', kind: r.kind, causes: [{ reason: 'FieldValueInvalid', message: 'Invalid value: 0x0: must be specified for an update', field: 'metadata.resourceVersion' }],
    });
  }
  const current = await live(ctx, r, name);
  if (!current.object) throw notFound(subject(r, name));
  const entries = recordUpdate(current.entries, managerOf(req, url), current.object, manifest.resource, ctx.now());
  sendJson(res, 200, await commit(ctx, r, manifest, entries, dryRun), warningHeaders(warnings));
}

const PATCH_TYPES = ['application/merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml'];

/** Attempts at a patch that loses a race with another writer (the patch itself had no resourceVersion). */
const PATCH_ATTEMPTS = 5;

export async function handlePatch(ctx: ServeContext, r: ServedResource, name: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  writable(r, 'patch');
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (!PATCH_TYPES.includes(type)) {
    if (type === 'application/strategic-merge-patch+json') {
      throw new ApiError(415, 'UnsupportedMediaType', `strategic merge patch is not supported for ${r.plural}.weft.io (custom resources); use a JSON merge patch (--type merge)`);
    }
    throw unsupportedMediaType(type);
  }
  const body = decodeBody(await readBody(req), type);
  const dryRun = isDryRun(url.searchParams.getAll('dryRun'));
  const validation = fieldValidationOf(url.searchParams.get('fieldValidation'));
  const manager = managerOf(req, url);
  const force = url.searchParams.get('force') === 'true';
  if (type === 'application/apply-patch+yaml' && !url.searchParams.get('fieldManager')) {
    throw badRequest('PATCH requests with content type application/apply-patch+yaml require fieldManager');
  }
  for (let attempt = 1; ; attempt++) {
    const current = await live(ctx, r, name);
    let patched: unknown;
    let entries: ManagedFieldsEntry[];
    let warnings: string[] = [];
    if (type === 'application/apply-patch+yaml') {
      const cleaned = cleanObject(body, r, validation);
      if (getName(cleaned.obj) !== name) throw badRequest(`the name of the object (${JSON.stringify(getName(cleaned.obj))}) does not match the name on the URL (${JSON.stringify(name)})`);
      warnings = cleaned.warnings;
      const applied = applyConfig(current.object, current.entries, manager, cleaned.obj, force, ctx.now());
      patched = applied.object;
      entries = applied.entries;
    } else {
      if (!current.object) throw notFound(subject(r, name));
      patched = patchWith(type, current.object, body);
      entries = recordUpdate(current.entries, manager, current.object, patched, ctx.now());
    }
    const prepared = prepare(patched, r, validation);
    warnings = [...warnings, ...prepared.warnings];
    try {
      const obj = await commit(ctx, r, prepared.manifest, entries, dryRun);
      sendJson(res, current.object ? 200 : 201, obj, warningHeaders(warnings));
      return;
    } catch (err) {
      // Someone wrote between our read and our transaction: patch the new state, as the
      // apiserver does, unless the patch itself named the resourceVersion it expected.
      const pinned = isObject(body) && isObject(body.metadata) && body.metadata.resourceVersion !== undefined;
      if (!(err instanceof ConflictError) || pinned || attempt >= PATCH_ATTEMPTS) throw err;
    }
  }
}

function getName(o: Json): unknown {
  return isObject(o.metadata) ? o.metadata.name : undefined;
}

function patchWith(type: string, object: Json, body: unknown): unknown {
  if (type === 'application/merge-patch+json') {
    if (!isObject(body)) throw badRequest('a JSON merge patch must be an object');
    return mergePatch.apply(structuredClone(object), body) as unknown;
  }
  if (!Array.isArray(body)) throw badRequest('a JSON patch must be an array of operations');
  try {
    return jsonPatch.applyPatch(structuredClone(object), body as jsonPatch.Operation[], true, false).newDocument;
  } catch (err) {
    const e = err as { name?: string; message: string };
    if (e.name === 'TEST_OPERATION_FAILED') throw new ApiError(422, 'Invalid', `the JSON patch's test operation failed: ${e.message.split('\n')[0]}`);
    throw badRequest(`the JSON patch cannot be applied: ${e.message.split('\n')[0]}`);
  }
}
