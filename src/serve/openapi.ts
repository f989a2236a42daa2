// OpenAPI documents built from the CRDs in crds/ (the schemas `weft apply` validates with):
// /openapi/v3 with the weft.io/v1alpha1 document (kubectl explain, and the fieldValidation
// parameter kubectl looks for on PATCH before it leaves validation to the server), and a
// JSON /openapi/v2 for older clients.
import { createHash } from 'node:crypto';
import { OBJECT_META_SCHEMA, schemaFor } from '../api/schema.js';
import type { Kind } from '../api/types.js';
import { weftVersion } from '../version.js';
import { GROUP, GROUP_VERSION, VERSION } from './discovery.js';
import { RESOURCES, type ServedResource } from './kinds.js';

const META_REF = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
const STATUS_REF = 'io.k8s.apimachinery.pkg.apis.meta.v1.Status';

/** The read-only Node kind has no CRD; its schema is written here. */
const NODE_SCHEMA = {
  description: "A host's agent as it last reported itself (read-only: each running agent publishes its own).",
  type: 'object',
  properties: {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    metadata: { type: 'object' },
    status: {
      type: 'object',
      properties: {
        network: { type: 'string' },
        ready: { type: 'boolean' },
        reason: { type: 'string' },
        lease: { type: 'string' },
        leaseFound: { type: 'boolean' },
        subnet: { type: 'string' },
        subnetIPv6: { type: 'string' },
        publicIP: { type: 'string' },
        publicIPv6: { type: 'string' },
        reserved: { type: 'boolean' },
        peers: { type: 'object', properties: { desired: { type: 'integer' }, programmed: { type: 'integer' }, skipped: { type: 'integer' } } },
        lastSync: { type: 'string' },
        version: { type: 'string' },
        startedAt: { type: 'string' },
        publishedAt: { type: 'string' },
      },
    },
  },
};

function schemaName(kind: string): string {
  return `io.weft.${VERSION}.${kind}`;
}

function kindSchema(r: ServedResource, ref: (name: string) => string): Record<string, unknown> {
  const base = r.kind === 'Node' ? NODE_SCHEMA : schemaFor(r.kind as Kind).openAPIV3Schema;
  const props = { ...(base.properties as Record<string, unknown>), metadata: { description: 'Standard object metadata.', allOf: [{ $ref: ref(META_REF) }] } };
  return { ...base, properties: props, 'x-kubernetes-group-version-kind': [{ group: GROUP, version: VERSION, kind: r.kind }] };
}

function listSchema(r: ServedResource, ref: (name: string) => string): Record<string, unknown> {
  return {
    type: 'object',
    required: ['items'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      items: { type: 'array', items: { $ref: ref(schemaName(r.kind)) } },
    },
    'x-kubernetes-group-version-kind': [{ group: GROUP, version: VERSION, kind: `${r.kind}List` }],
  };
}

const QUERY = (name: string, description: string) => ({ name, in: 'query', description, schema: { type: 'string' }, type: 'string' });
const WRITE_PARAMS = [
  QUERY('dryRun', 'When All, the request is validated and planned but nothing is written.'),
  QUERY('fieldManager', 'The name of the actor making the change (managedFields).'),
  QUERY('fieldValidation', 'Ignore, Warn (the default) or Strict: what an unknown field does.'),
];

function operations(r: ServedResource, v3: boolean): Record<string, unknown> {
  const ref = (name: string) => (v3 ? `#/components/schemas/${name}` : `#/definitions/${name}`);
  const body = (schema: string) =>
    v3 ? { requestBody: { content: { '*/*': { schema: { $ref: ref(schema) } } } } } : { parameters: [{ name: 'body', in: 'body', required: true, schema: { $ref: ref(schema) } }] };
  const ok = (schema: string) =>
    v3 ? { responses: { '200': { description: 'OK', content: { 'application/json': { schema: { $ref: ref(schema) } } } } } } : { responses: { '200': { description: 'OK', schema: { $ref: ref(schema) } } } };
  const gvk = { 'x-kubernetes-group-version-kind': { group: GROUP, version: VERSION, kind: r.kind } };
  const op = (id: string, action: string, extra: Record<string, unknown>) => ({ operationId: `${id}${r.kind}`, 'x-kubernetes-action': action, ...gvk, ...extra });
  const collection: Record<string, unknown> = {
    get: op('list', 'list', { ...ok(`${schemaName(r.kind)}List`), parameters: [QUERY('labelSelector', 'Label selector.'), QUERY('fieldSelector', 'Field selector.'), QUERY('watch', 'Watch for changes.'), QUERY('resourceVersion', 'List or watch from this etcd revision.')] }),
  };
  const item: Record<string, unknown> = {
    get: op('read', 'get', ok(schemaName(r.kind))),
    parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' }, type: 'string' }],
  };
  if (r.verbs.includes('create')) {
    const b = body(schemaName(r.kind));
    collection.post = op('create', 'post', { ...ok(schemaName(r.kind)), ...b, parameters: [...(('parameters' in b ? b.parameters : []) as unknown[]), ...WRITE_PARAMS] });
  }
  if (r.verbs.includes('update')) {
    const b = body(schemaName(r.kind));
    item.put = op('replace', 'put', { ...ok(schemaName(r.kind)), ...b, parameters: [...(('parameters' in b ? b.parameters : []) as unknown[]), ...WRITE_PARAMS] });
  }
  if (r.verbs.includes('patch')) {
    const patchBody = v3
      ? { requestBody: { content: Object.fromEntries(['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml'].map((t) => [t, { schema: { type: 'object' } }])) } }
      : { parameters: [{ name: 'body', in: 'body', required: true, schema: { type: 'object' } }] };
    item.patch = op('patch', 'patch', {
      ...ok(schemaName(r.kind)),
      ...patchBody,
      parameters: [...(('parameters' in patchBody ? patchBody.parameters : []) as unknown[]), ...WRITE_PARAMS, QUERY('force', 'Server-side apply: take over fields owned by other managers.')],
    });
  }
  if (r.verbs.includes('delete')) {
    item.delete = op('delete', 'delete', { ...ok(STATUS_REF), parameters: [QUERY('dryRun', 'When All, nothing is deleted.'), QUERY('force', 'true: delete even when the same refusals as weft delete apply (like --force).')] });
  }
  return { [`/apis/${GROUP_VERSION}/${r.plural}`]: collection, [`/apis/${GROUP_VERSION}/${r.plural}/{name}`]: item };
}

function definitions(v3: boolean): Record<string, unknown> {
  const ref = (name: string) => (v3 ? `#/components/schemas/${name}` : `#/definitions/${name}`);
  const defs: Record<string, unknown> = {
    [META_REF]: { ...OBJECT_META_SCHEMA, required: undefined, properties: { ...OBJECT_META_SCHEMA.properties, managedFields: { type: 'array', items: { type: 'object' } } } },
    [STATUS_REF]: { type: 'object', properties: { kind: { type: 'string' }, apiVersion: { type: 'string' }, status: { type: 'string' }, message: { type: 'string' }, reason: { type: 'string' }, code: { type: 'integer' } } },
  };
  for (const r of RESOURCES) {
    defs[schemaName(r.kind)] = kindSchema(r, ref);
    defs[`${schemaName(r.kind)}List`] = listSchema(r, ref);
  }
  return JSON.parse(JSON.stringify(defs)) as Record<string, unknown>;
}

export function openapiV3GroupVersion(): Record<string, unknown> {
  let paths: Record<string, unknown> = {};
  for (const r of RESOURCES) paths = { ...paths, ...operations(r, true) };
  return { openapi: '3.0.0', info: { title: 'weft', version: weftVersion() }, paths, components: { schemas: definitions(true) } };
}

let v3Hash: string | undefined;

/** The v3 index: one entry per group-version, with a hash so clients may cache. */
export function openapiV3Index(): Record<string, unknown> {
  v3Hash ??= createHash('sha512').update(JSON.stringify(openapiV3GroupVersion())).digest('hex').slice(0, 32).toUpperCase();
  return { paths: { [`apis/${GROUP_VERSION}`]: { serverRelativeURL: `/openapi/v3/apis/${GROUP_VERSION}?hash=${v3Hash}` } } };
}

export function openapiV2(): Record<string, unknown> {
  let paths: Record<string, unknown> = {};
  for (const r of RESOURCES) paths = { ...paths, ...operations(r, false) };
  return { swagger: '2.0', info: { title: 'weft', version: weftVersion() }, paths, definitions: definitions(false) };
}
