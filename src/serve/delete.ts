// DELETE: `weft delete`'s planner and refusals. kubectl sends dryRun and preconditions in the
// body (DeleteOptions), not the URL, so both are read. The --force escape is ?force=true or
// the annotation weft.io/force-delete: "true" on the object (kubectl can set that).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RefusedError } from '../api/errors.js';
import type { Kind } from '../api/types.js';
import { planDelete } from '../control/delete.js';
import type { ServeContext } from './context.js';
import type { ServedResource } from './kinds.js';
import { decodeBody, isObject } from './objects.js';
import { findIndex, managedKey, readState } from './read.js';
import { readBody, sendJson } from './respond.js';
import { ApiError, notFound } from './status.js';
import { isDryRun } from './write.js';

export const FORCE_DELETE_ANNOTATION = 'weft.io/force-delete';

export async function handleDelete(ctx: ServeContext, r: ServedResource, name: string, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (!r.verbs.includes('delete')) throw new ApiError(405, 'MethodNotAllowed', `${r.plural}.weft.io cannot be deleted: each agent publishes its own node and removes it when it stops`);
  const raw = await readBody(req);
  const options = raw.length ? decodeBody(raw, 'application/json') : {};
  if (!isObject(options)) throw new ApiError(400, 'BadRequest', 'the body of a DELETE must be DeleteOptions');
  const dryRun = isDryRun([...url.searchParams.getAll('dryRun'), ...(Array.isArray(options.dryRun) ? options.dryRun : [options.dryRun])]);
  const preconditions = isObject(options.preconditions) ? options.preconditions : {};

  const { snap, list } = await readState(ctx, r);
  const i = findIndex(list, r, name);
  if (i === undefined) throw notFound({ plural: r.plural, kind: r.kind, name });
  const obj = list.items[i]!;
  if (typeof preconditions.uid === 'string' && preconditions.uid !== obj.metadata.uid) {
    throw new ApiError(409, 'Conflict', `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${obj.metadata.uid ?? ''}`);
  }
  const force = url.searchParams.get('force') === 'true' || obj.metadata.annotations?.[FORCE_DELETE_ANNOTATION] === 'true';
  const network = obj.kind === 'Lease' ? obj.spec.network : undefined;
  let plan;
  try {
    plan = planDelete(
      snap,
      {
        kind: r.kind as Kind,
        name,
        ...(network !== undefined ? { network } : {}),
        ...(typeof preconditions.resourceVersion === 'string' ? { resourceVersion: preconditions.resourceVersion } : {}),
      },
      ctx.rs.ctx(force),
    );
  } catch (err) {
    if (err instanceof RefusedError && /--force/.test(err.message)) {
      throw new RefusedError(`${err.message} (through the API: ?force=true, or annotate it ${FORCE_DELETE_ANNOTATION}=true)`);
    }
    throw err;
  }
  const key = managedKey(ctx, r, name);
  const ops = snap.kvs.has(key) ? [...plan.ops, { delete: key }] : plan.ops;
  if (!dryRun) await ctx.rs.commit({ ...plan, ops });
  sendJson(res, 200, obj);
}
