// A request's object, made ready for the planner: decoded (JSON or YAML, bounded), checked to
// be this resource's kind, server-owned metadata and status set aside, unknown fields handled
// as fieldValidation asks, then validated by parseManifest: the very checks of `weft apply`.
import { parse } from 'yaml';
import { MAX_ALIAS_COUNT, parseManifest, type ManifestObject } from '../api/manifest.js';
import { OBJECT_META_SCHEMA, schemaFor } from '../api/schema.js';
import type { Kind } from '../api/types.js';
import { GROUP_VERSION, VERSION } from './discovery.js';
import type { ServedResource } from './kinds.js';
import { ApiError, badRequest, invalid } from './status.js';

export type Json = Record<string, unknown>;
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** JSON, or YAML for apply-patch+yaml (JSON is YAML too); hostile input gives a 400. */
export function decodeBody(body: Buffer, contentType: string): unknown {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(body);
  } catch {
    throw badRequest('the request body is not valid UTF-8');
  }
  try {
    if (/yaml/.test(contentType)) return parse(text, { uniqueKeys: true, maxAliasCount: MAX_ALIAS_COUNT, version: '1.2' }) as unknown;
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw badRequest(`the request body is not valid ${/yaml/.test(contentType) ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * ObjectMeta fields the API server owns or weft does not use; a client sends them back
 * unchanged (kubectl edit, a GET-modify-PUT), so they are dropped without complaint.
 */
const SERVER_META = ['managedFields', 'selfLink', 'namespace', 'generateName', 'finalizers', 'ownerReferences', 'deletionTimestamp', 'deletionGracePeriodSeconds'];

/** Removes fields the schema does not declare; returns their paths (".spec.foo"). */
export function pruneUnknown(value: unknown, schema: Json, path: string, out: string[]): void {
  if (!isObject(value) || schema['x-kubernetes-preserve-unknown-fields'] === true) return;
  const props = isObject(schema.properties) ? schema.properties : undefined;
  const extra = schema.additionalProperties;
  for (const key of Object.keys(value)) {
    const child = props?.[key];
    if (isObject(child)) pruneUnknown(value[key], child, `${path}.${key}`, out);
    else if (isObject(extra)) pruneUnknown(value[key], extra, `${path}.${key}`, out);
    else if (props && extra !== true) {
      out.push(`${path}.${key}`);
      delete value[key];
    }
  }
}

function rootSchema(kind: Kind): Json {
  const base = schemaFor(kind).openAPIV3Schema;
  return { ...base, properties: { ...(base.properties as Json), metadata: OBJECT_META_SCHEMA } };
}

export interface Prepared {
  manifest: ManifestObject;
  /** Unknown fields dropped under fieldValidation=Warn (for Warning headers). */
  warnings: string[];
}

/** Checks kind and apiVersion, and handles unknown fields; works on (and returns) a copy. */
export function cleanObject(raw: unknown, r: ServedResource, validation: FieldValidation): { obj: Json; warnings: string[] } {
  if (!isObject(raw)) throw badRequest(`the body must be a ${r.kind} object`);
  const obj = structuredClone(raw);
  if (obj.kind !== r.kind) throw badRequest(`the body's kind ${JSON.stringify(obj.kind)} does not match the resource ${r.plural} (kind ${r.kind})`);
  if (obj.apiVersion !== GROUP_VERSION) throw badRequest(`the body's apiVersion ${JSON.stringify(obj.apiVersion)} is not served here; use ${GROUP_VERSION}`);
  delete obj.status;
  if (isObject(obj.metadata)) {
    const meta = obj.metadata;
    if (meta.namespace !== undefined && meta.namespace !== '') throw badRequest(`${r.plural} are cluster-scoped: metadata.namespace must be empty`);
    for (const k of SERVER_META) delete meta[k];
    // creationTimestamp: null is how Go clients send "unset".
    if (meta.creationTimestamp === null) delete meta.creationTimestamp;
  }
  const unknown: string[] = [];
  pruneUnknown(obj, rootSchema(r.kind as Kind), '', unknown);
  if (unknown.length && validation === 'Strict') {
    throw badRequest(
      `${r.kind} in version "${VERSION}" cannot be handled as a ${r.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u.slice(1)}"`).join(', ')}`,
    );
  }
  return { obj, warnings: validation === 'Warn' ? unknown.map((u) => `unknown field "${u.slice(1)}"`) : [] };
}

/** The full check: clean, then `weft apply`'s own validation (schema and Flannel's rules). */
export function prepare(raw: unknown, r: ServedResource, validation: FieldValidation): Prepared {
  const { obj, warnings } = cleanObject(raw, r, validation);
  const { objects, problems } = parseManifest(JSON.stringify(obj), 'request');
  const name = isObject(obj.metadata) && typeof obj.metadata.name === 'string' ? obj.metadata.name : undefined;
  if (problems.length || !objects[0]) {
    throw invalid({ plural: r.plural, kind: r.kind, ...(name !== undefined ? { name } : {}) }, problems.length ? problems : [{ field: '', message: 'no object' }]);
  }
  return { manifest: objects[0], warnings };
}

export function fieldValidationOf(value: string | null): FieldValidation {
  if (value === null || value === '') return 'Warn';
  if (value === 'Strict' || value === 'Warn' || value === 'Ignore') return value;
  throw new ApiError(400, 'BadRequest', `fieldValidation must be one of Ignore, Warn or Strict, got ${JSON.stringify(value)}`);
}
