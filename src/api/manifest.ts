// Manifests: multi-document YAML in, validated resources out, or every problem found with
// the file and line it comes from (`FILE:LINE: kind/name: spec.field: what is wrong`).
//
// Input is hostile: its size is bounded, alias expansion is bounded (billion laughs),
// duplicate keys are errors, and nothing reaches the store before the CRD schema and
// Flannel's rules have both passed.
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, visit, type Document, type Node } from 'yaml';
import { Cidr, Cidr6, Ipv6 } from '../alloc/cidr.js';
import { networkNameProblem } from './names.js';
import type { FieldProblem } from './errors.js';
import { describeValue } from './json.js';
import { parseLeaseResourceName } from './lease.js';
import { resolveNetwork } from './network.js';
import { PATTERN_NOUNS, schemaFor, type ErrorObject } from './schema.js';
import { API_VERSION, KINDS, type Kind, type NetworkSpec, type Resource } from './types.js';

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Aliases a document may expand; a handful is normal, thousands is an attack. */
export const MAX_ALIAS_COUNT = 100;
/** Kubernetes' limit on the total size of an object's annotations (keys and values). */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
/**
 * Mapping keys one document may hold. A Network or Subnet has a few dozen; the yaml library
 * spends tens of microseconds per key, so 64,000 unknown keys (757 KB) took minutes with its
 * unique-keys check and a problem line per key. Counted before parsing (keyIndicators).
 */
export const MAX_KEYS_PER_DOCUMENT = 10_000;
/** Mapping keys one input (file or stdin) may hold: about 2,000 Subnets, parsed in about a second. */
export const MAX_KEYS_PER_INPUT = 20_000;
/** Problems reported per document; the rest are summarised in one line. */
export const MAX_PROBLEMS_PER_DOCUMENT = 100;

/**
 * The only explicit tags a manifest may carry: YAML 1.2's core schema. Anything else either
 * changes a value's type behind the schema's back (!!binary makes a Buffer, !!set a Set) or
 * is silently dropped by the parser (!!js/function, !!python/object: "unresolved").
 */
const CORE_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

type Path = (string | number)[];

/** One object from a manifest, with what is needed to point back at its source. */
export interface ManifestObject {
  kind: Kind;
  name: string;
  /** "network/default": how problems name the object. */
  ref: string;
  resource: Resource;
  file: string;
  /** Line of the document's first node. */
  line: number;
  /** Best line for a dotted field path ("spec.cidr"), falling back to the nearest parent. */
  lineOf(field: string): number;
}

export interface ParseResult {
  objects: ManifestObject[];
  problems: FieldProblem[];
}

export function kindRef(kind: string, name: string | undefined): string {
  return `${kind.toLowerCase()}/${name ?? '(unnamed)'}`;
}

/** Parses and validates one input (a file or stdin). Empty documents are skipped. */
export function parseManifest(text: string, file: string): ParseResult {
  const objects: ManifestObject[] = [];
  const problems: FieldProblem[] = [];
  if (Buffer.byteLength(text) > MAX_MANIFEST_BYTES) {
    problems.push({ file, line: 1, field: '', message: `input is larger than ${MAX_MANIFEST_BYTES} bytes` });
    return { objects, problems };
  }
  const crowded = crowdedDocument(text);
  if (crowded) {
    problems.push({
      file,
      line: crowded.line,
      field: '',
      message: crowded.input
        ? `invalid YAML: more than ${MAX_KEYS_PER_INPUT} mapping keys in one input; split it into several files (refused without parsing it)`
        : `invalid YAML: a document with more than ${MAX_KEYS_PER_DOCUMENT} mapping keys is not a manifest; refused without parsing it`,
    });
    return { objects, problems };
  }
  const lineCounter = new LineCounter();
  // Duplicate keys are found by structureProblems (a Set per mapping): the library's own
  // check compares each key with every earlier one.
  const docs = parseAllDocuments(text, { lineCounter, uniqueKeys: false, prettyErrors: true });
  const lineAt = (offset: number) => lineCounter.linePos(offset).line;
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        problems.push({ file, line: lineAt(e.pos[0]), field: '', message: `invalid YAML: ${firstLine(e.message)}` });
      }
      continue;
    }
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    const docLine = lineAt(doc.contents.range?.[0] ?? 0);
    const structural = structureProblems(doc, lineAt);
    if (structural.length > 0) {
      for (const p of structural) problems.push({ file, line: p.line ?? docLine, field: '', message: `invalid YAML: ${p.message}` });
      continue;
    }
    let data: unknown;
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      problems.push({ file, line: docLine, field: '', message: `invalid YAML: ${firstLine((err as Error).message)}` });
      continue;
    }
    const lineOf = (field: string) => locate(doc, fieldToPath(field), false, lineAt) ?? docLine;
    if (!data || typeof data !== 'object' || Array.isArray(data)) {
      problems.push({ file, line: docLine, field: '', message: 'a document must be a mapping with apiVersion, kind, metadata and spec' });
      continue;
    }
    const obj = data as Record<string, unknown>;
    const meta = obj.metadata as Record<string, unknown> | undefined;
    const name = meta && typeof meta === 'object' && typeof meta.name === 'string' ? meta.name : undefined;
    const kind = obj.kind;
    const at = (field: string, message: string, onKey = false): FieldProblem => ({
      file,
      line: locate(doc, fieldToPath(field), onKey, lineAt) ?? docLine,
      object: typeof kind === 'string' ? kindRef(kind, name) : undefined,
      field,
      message,
    });

    if (!KINDS.includes(kind as Kind)) {
      problems.push(
        at('kind', kind === undefined ? 'is required (Network, Subnet or Lease)' : `${describeValue(kind)} is not a weft kind; expected Network, Subnet or Lease`),
      );
      continue;
    }
    const k = kind as Kind;
    const docProblems: FieldProblem[] = [];
    if (obj.apiVersion !== undefined && obj.apiVersion !== API_VERSION) {
      docProblems.push(at('apiVersion', `${describeValue(obj.apiVersion)} is not served; use ${API_VERSION}`));
    }
    const schema = schemaFor(k);
    if (!schema.validate(obj)) {
      // Bounded: each problem is located by a walk of the document.
      const errors = schema.validate.errors ?? [];
      for (const e of errors.slice(0, MAX_PROBLEMS_PER_DOCUMENT)) {
        const p = ajvProblem(e, at);
        if (p) docProblems.push(p);
      }
      if (errors.length > MAX_PROBLEMS_PER_DOCUMENT) {
        docProblems.push({ ...at('', ''), field: '', message: `${errors.length - MAX_PROBLEMS_PER_DOCUMENT} more problems in this document not shown` });
      }
    }
    docProblems.push(...semanticProblems(k, obj, name, docProblems, at));
    if (docProblems.length > 0) {
      problems.push(...docProblems);
      continue;
    }
    objects.push({
      kind: k,
      name: name!,
      ref: kindRef(k, name),
      resource: obj as unknown as Resource,
      file,
      line: docLine,
      lineOf,
    });
  }
  // ajv reports in schema order; people read top to bottom.
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  return { objects, problems };
}

/** Parses several inputs; also refuses the same object twice. */
export function parseManifests(inputs: { file: string; text: string }[]): ParseResult {
  const objects: ManifestObject[] = [];
  const problems: FieldProblem[] = [];
  const seen = new Map<string, ManifestObject>();
  for (const input of inputs) {
    const r = parseManifest(input.text, input.file);
    problems.push(...r.problems);
    for (const o of r.objects) {
      const id = o.kind === 'Lease' ? `${o.ref}@${(o.resource.spec as { network?: string }).network}` : o.ref;
      const first = seen.get(id);
      if (first) {
        problems.push({
          file: o.file,
          line: o.line,
          object: o.ref,
          field: '',
          message: `appears twice; first at ${first.file}:${first.line}`,
        });
        continue;
      }
      seen.set(id, o);
      objects.push(o);
    }
  }
  return { objects, problems };
}

type At = (field: string, message: string, onKey?: boolean) => FieldProblem;

/** Checks the schema cannot express: Flannel's rules, name rules, cross-field rules. */
function semanticProblems(
  kind: Kind,
  obj: Record<string, unknown>,
  name: string | undefined,
  schemaProblems: FieldProblem[],
  at: At,
): FieldProblem[] {
  const out: FieldProblem[] = [];
  const spec = obj.spec;
  const specOk = spec !== null && typeof spec === 'object' && !Array.isArray(spec);
  const s = (specOk ? spec : {}) as Record<string, unknown>;
  const related = (field: string) =>
    schemaProblems.some(
      (p) => p.field === field || field.startsWith(p.field + '.') || p.field.startsWith(field + '.'),
    );
  const meta = obj.metadata as { annotations?: unknown } | undefined;
  if (meta && typeof meta.annotations === 'object' && meta.annotations !== null && !related('metadata.annotations')) {
    let size = 0;
    for (const [k, v] of Object.entries(meta.annotations)) size += Buffer.byteLength(k) + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
    if (size > MAX_ANNOTATIONS_BYTES) {
      out.push(at('metadata.annotations', `${size} bytes in total, over the ${MAX_ANNOTATIONS_BYTES}-byte limit`, true));
    }
  }
  if (kind === 'Network') {
    if (name !== undefined) {
      const problem = networkNameProblem(name);
      if (problem && !related('metadata.name')) out.push(at('metadata.name', problem));
    }
    if (specOk) {
      let resolved: ReturnType<typeof resolveNetwork> | undefined;
      try {
        resolved = resolveNetwork(name ?? '', spec as NetworkSpec);
      } catch {
        resolved = undefined; // the schema problems already describe why the shape is wrong
      }
      for (const p of resolved?.problems ?? []) if (!related(p.field)) out.push(at(p.field, p.message));
    }
  } else if (kind === 'Subnet') {
    if (specOk && s.node === undefined && s.publicIP === undefined && s.publicIPv6 === undefined) {
      out.push(at('spec', 'must set node, publicIP or both', true));
    }
    if (specOk && s.cidr === undefined && s.ipv6Cidr === undefined) {
      out.push(at('spec.cidr', 'is required (or spec.ipv6Cidr, in an IPv6-only network)'));
    }
    if (typeof s.cidr === 'string' && !related('spec.cidr')) {
      const c = Cidr.parse(s.cidr);
      if (c && c.hasHostBits(s.cidr)) {
        out.push(at('spec.cidr', `"${s.cidr}" has host bits set; the subnet address is ${c}`));
      }
    }
    if (typeof s.ipv6Cidr === 'string' && !related('spec.ipv6Cidr')) {
      const c = Cidr6.parse(s.ipv6Cidr);
      if (!c) out.push(at('spec.ipv6Cidr', `"${s.ipv6Cidr}" is not an IPv6 CIDR (e.g. fd00:5:0:3::/64)`));
      else if (!Cidr6.parse(s.ipv6Cidr, { strict: true })) {
        out.push(at('spec.ipv6Cidr', `"${s.ipv6Cidr}" has host bits set; the subnet address is ${c}`));
      }
    }
    if (typeof s.publicIPv6 === 'string' && !related('spec.publicIPv6') && !Ipv6.parse(s.publicIPv6)) {
      out.push(at('spec.publicIPv6', `"${s.publicIPv6}" is not an IPv6 address`));
    }
  } else if (kind === 'Lease') {
    if (name !== undefined && !related('metadata.name') && !parseLeaseResourceName(name)) {
      out.push(at('metadata.name', `"${name}" is not a lease key like 10.5.3.0-24 (or 10.5.3.0-24.fd00-5-0-3-0-0-0-0-64 with IPv6)`));
    }
  }
  return out;
}

function ajvProblem(e: ErrorObject, at: At): FieldProblem | undefined {
  const path = pointerToPath(e.instancePath);
  // A bad property name gives two errors: the inner one (carrying propertyName) and this one.
  if (e.propertyName !== undefined) return undefined;
  if (e.keyword === 'propertyNames') {
    const name = (e.params as { propertyName: string }).propertyName;
    return at(pathToField([...path, name]), `${describeValue(name)} is not a label key ([prefix/]name, the name at most 63 characters)`, true);
  }
  const field = pathToField(path);
  const data = e.data;
  switch (e.keyword) {
    case 'required': {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      return { ...at(field, '', true), field: pathToField([...path, missing]), message: 'is required' };
    }
    case 'additionalProperties': {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((e.parentSchema?.properties as object | undefined) ?? {});
      const hint = known.length ? `; known fields: ${known.join(', ')}` : '';
      return at(pathToField([...path, extra]), `unknown field${hint}`, true);
    }
    case 'enum':
      return at(field, `${describeValue(data)} is not one of: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`);
    case 'pattern': {
      const noun = PATTERN_NOUNS[(e.params as { pattern: string }).pattern];
      return at(field, noun ? `${describeValue(data)} is not ${noun}` : `${describeValue(data)} ${e.message}`);
    }
    case 'type':
      return at(field, `must be ${(e.params as { type: string }).type}, got ${describeValue(data)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return at(field, `${e.message}, got ${describeValue(data)}`);
    case 'format':
      return at(field, `${describeValue(data)} is not a valid ${(e.params as { format: string }).format}`);
    default:
      return at(field, e.message ?? 'is invalid');
  }
}

/**
 * The line of the node at path. With onKey, the line of the key naming it (what an unknown
 * or missing field points at). Missing nodes fall back to their nearest existing parent.
 */
function locate(doc: Document.Parsed, path: Path, onKey: boolean, lineAt: (o: number) => number): number | undefined {
  let node: unknown = doc.contents;
  let keyNode: Node | undefined;
  let best: number | undefined = rangeLine(node, lineAt);
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      keyNode = pair.key as Node;
      node = pair.value;
      best = rangeLine(keyNode, lineAt) ?? best;
    } else if (isSeq(node) && typeof seg === 'number') {
      node = node.items[seg];
      keyNode = undefined;
      best = rangeLine(node, lineAt) ?? best;
    } else {
      return best;
    }
  }
  if (onKey && keyNode) return rangeLine(keyNode, lineAt) ?? best;
  return rangeLine(node, lineAt) ?? best;
}

/**
 * What the parser accepts but a manifest must not contain: tags outside the core schema,
 * mapping keys that are not scalars (they would be stringified), aliases to no anchor, and
 * anything else the parser only warns about. Each at its own line.
 */
function structureProblems(doc: Document.Parsed, lineAt: (o: number) => number): { line: number | undefined; message: string }[] {
  const out: { line: number | undefined; message: string }[] = [];
  for (const w of doc.warnings) {
    if (w.code !== 'TAG_RESOLVE_FAILED') out.push({ line: lineAt(w.pos[0]), message: firstLine(w.message) });
  }
  const checkNode = (node: Node) => {
    if (node.tag && !CORE_TAGS.has(node.tag)) {
      out.push({ line: rangeLine(node, lineAt), message: `tag ${describeValue(node.tag.replace(/^tag:yaml\.org,2002:/, '!!'))} is not allowed` });
    }
    if (isAlias(node) && !node.resolve(doc)) {
      out.push({ line: rangeLine(node, lineAt), message: `alias *${node.source} has no anchor before it` });
    }
  };
  visit(doc, {
    // A visitor for maps replaces the Node visitor for them: both checks run here.
    Map: (_, map) => {
      checkNode(map);
      // Duplicate keys, with a Set per mapping (the parser's own check is quadratic).
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        if (seen.has(key)) out.push({ line: rangeLine(pair.key, lineAt), message: 'Map keys must be unique' });
        seen.add(key);
      }
    },
    Pair: (_, pair) => {
      if (pair.key !== null && !isScalar(pair.key)) {
        out.push({ line: rangeLine(pair.key, lineAt), message: 'a mapping key must be a scalar, not a collection' });
      }
    },
    Node: (_, node) => checkNode(node),
  });
  return out;
}

/**
 * The first document holding more than MAX_KEYS_PER_DOCUMENT key indicators (or the point
 * where the input passes MAX_KEYS_PER_INPUT), and the line where it crossed the limit. One pass over the characters, no parsing: a ':' followed by a
 * space, a tab or a line end (block and flow style), or preceded by a quote (JSON). Colons
 * inside values (IPv6 addresses, MACs, times) are not followed by a blank, so a count can
 * only be high for quoted keys in flow style, which is still a key each.
 */
export function crowdedDocument(text: string): { line: number; input?: true } | undefined {
  let line = 1;
  let keys = 0;
  let total = 0;
  let lineStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      line++;
      lineStart = true;
      continue;
    }
    // "---" at the start of a line begins a new document.
    if (lineStart && c === 45 && text.startsWith('---', i)) keys = 0;
    lineStart = false;
    if (c !== 58) continue; // ':'
    const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 10;
    const prev = i > 0 ? text.charCodeAt(i - 1) : 0;
    if (next === 32 || next === 9 || next === 10 || next === 13 || prev === 34 || prev === 39) {
      if (++keys > MAX_KEYS_PER_DOCUMENT) return { line };
      if (++total > MAX_KEYS_PER_INPUT) return { line, input: true };
    }
  }
  return undefined;
}

function rangeLine(node: unknown, lineAt: (o: number) => number): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range ? lineAt(range[0]) : undefined;
}

function pointerToPath(pointer: string): Path {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

export function fieldToPath(field: string): Path {
  if (!field) return [];
  const out: Path = [];
  for (const part of field.split('.')) {
    const m = /^([^[]*)((\[\d+\])*)$/.exec(part);
    if (!m) {
      out.push(part);
      continue;
    }
    if (m[1]) out.push(m[1]);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
  }
  return out;
}

function pathToField(path: Path): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

