// The CRD files in crds/ are the schema: the CLI compiles each kind's openAPIV3Schema with
// ajv, so what `weft apply` accepts is what a Kubernetes apiserver would accept.
//
// Two deliberate differences from an apiserver, both stricter:
// - unknown fields are rejected (an apiserver prunes them silently), by adding
//   `additionalProperties: false` to every object schema that lists its properties;
// - metadata is checked against a small ObjectMeta schema (the apiserver does that itself,
//   CRDs may not describe it).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';
import { API_GROUP, KINDS, type Kind } from './types.js';

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
}

export interface KindSchema {
  kind: Kind;
  plural: string;
  singular: string;
  shortNames: string[];
  version: string;
  /** The openAPIV3Schema exactly as the CRD file has it. */
  openAPIV3Schema: Record<string, unknown>;
  printerColumns: PrinterColumn[];
  validate: ValidateFunction;
}

/** Where the CRDs live, from src/api (tests) and from dist/api (the built CLI) alike. */
export const CRD_DIR = fileURLToPath(new URL('../../crds/', import.meta.url));
export const CRD_FILES: Record<Kind, string> = {
  Network: 'network.yaml',
  Subnet: 'subnet.yaml',
  Lease: 'lease.yaml',
};

const KUBERNETES_KEYWORDS = [
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
];

const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const STRING_MAP = { type: 'object', additionalProperties: { type: 'string' } };
// Kubernetes' label rules: a value is at most 63 characters; a key is a name of the same form,
// optionally prefixed by a DNS subdomain and '/'. Unbounded labels would reach etcd.
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';
const LABEL_KEY = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';
const LABELS = {
  type: 'object',
  propertyNames: { maxLength: 317, pattern: LABEL_KEY },
  additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE },
};

/** What weft accepts in metadata: enough to round-trip `weft get -o yaml` into `weft apply`. */
export const OBJECT_META_SCHEMA = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN },
    labels: LABELS,
    annotations: STRING_MAP,
    resourceVersion: { type: 'string', pattern: '^[0-9]+$' },
    uid: { type: 'string', maxLength: 64 },
    generation: { type: 'integer', format: 'int64', minimum: 0 },
    creationTimestamp: { type: 'string', format: 'date-time' },
  },
};

/**
 * Human names for the patterns the CRDs use, so a mismatch says what was expected rather
 * than printing a regular expression. A unit test checks every CRD pattern is listed here.
 */
export const PATTERN_NOUNS: Record<string, string> = {
  '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}/(3[0-2]|[12]?[0-9])$':
    'an IPv4 CIDR (a.b.c.d/n)',
  '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$':
    'an IPv4 address (a.b.c.d)',
  '^[0-9a-fA-F:]{2,39}/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$': 'an IPv6 CIDR (e.g. fd00:5::/48)',
  '^[0-9a-fA-F:]{2,39}$': 'an IPv6 address (e.g. fd00::1)',
  '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$': 'a MAC address (aa:bb:cc:dd:ee:ff)',
  '^([0-9]+(ms|s|m|h))+$': 'a duration like 24h, 90m or 30s',
  '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$': "a DNS label (lowercase letters, digits and '-', at most 63)",
  '^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$': "a node name (letters, digits, '.', '_' and '-')",
  [DNS_SUBDOMAIN]: "a DNS subdomain name (lowercase letters, digits, '-' and '.')",
  '^[0-9]+$': 'a decimal number',
  [LABEL_VALUE]: "a label value (letters, digits, '-', '_' and '.', at most 63)",
  [LABEL_KEY]: "a label key ([prefix/]name)",
};

type Json = Record<string, unknown>;

/** Rejects unknown fields: every object schema with listed properties gets additionalProperties: false. */
export function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema as Json)) {
    out[k] = k === 'enum' || k === 'required' ? v : closeObjects(v);
  }
  if (
    out.properties &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  return out;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ strict: true, allErrors: true, verbose: true });
  for (const keyword of KUBERNETES_KEYWORDS) ajv.addKeyword({ keyword });
  // ajv-formats is CommonJS; under NodeNext its default export is the module object.
  const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ??
    addFormatsModule) as unknown as (a: Ajv) => Ajv;
  addFormats(ajv);
  return ajv;
}

function asObject(v: unknown, what: string): Json {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`${what} is not an object`);
  return v as Json;
}

/** Reads and compiles one CRD file. Throws when the file is not a weft CRD. */
export function loadCrd(kind: Kind, dir: string = CRD_DIR, ajv: Ajv = newAjv()): KindSchema {
  const file = `${dir.replace(/\/$/, '')}/${CRD_FILES[kind]}`;
  const crd = asObject(parse(readFileSync(file, 'utf8')), file);
  const spec = asObject(crd.spec, `${file}: spec`);
  const names = asObject(spec.names, `${file}: spec.names`);
  if (spec.group !== API_GROUP || names.kind !== kind) {
    throw new Error(`${file}: expected group ${API_GROUP} kind ${kind}`);
  }
  const versions = spec.versions as Json[];
  const version = versions.find((v) => v.storage === true) ?? versions[0];
  if (!version) throw new Error(`${file}: no versions`);
  const schemaHolder = asObject(version.schema, `${file}: schema`);
  const openAPIV3Schema = asObject(schemaHolder.openAPIV3Schema, `${file}: openAPIV3Schema`);
  const closed = closeObjects(openAPIV3Schema) as Json;
  const props = asObject(closed.properties, `${file}: properties`);
  props.metadata = closeObjects(OBJECT_META_SCHEMA);
  return {
    kind,
    plural: String(names.plural),
    singular: String(names.singular),
    shortNames: Array.isArray(names.shortNames) ? names.shortNames.map(String) : [],
    version: String(version.name),
    openAPIV3Schema,
    printerColumns: (version.additionalPrinterColumns as PrinterColumn[] | undefined) ?? [],
    validate: ajv.compile(closed),
  };
}

let cache: Map<Kind, KindSchema> | undefined;

/** Every kind's compiled schema, loaded once per process. */
export function schemas(): Map<Kind, KindSchema> {
  if (!cache) {
    const ajv = newAjv();
    cache = new Map(KINDS.map((k) => [k, loadCrd(k, CRD_DIR, ajv)]));
  }
  return cache;
}

export function schemaFor(kind: Kind): KindSchema {
  return schemas().get(kind)!;
}

export type { ErrorObject };
