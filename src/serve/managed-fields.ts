// Field ownership for server-side apply, a subset of Kubernetes' structured-merge-diff:
// every leaf under spec, metadata.labels and metadata.annotations is owned by the managers
// that set it. Maps merge key by key; there are no lists in weft's schemas (a list would be
// one atomic leaf). An Update (create, PUT, merge or JSON patch) takes the fields it changed;
// an Apply owns exactly the fields of its configuration, conflicts with another manager
// that owns a field it would change (unless forced), and removes the fields it applied
// before and no longer does, when nobody else owns them.
import { isDeepStrictEqual } from 'node:util';
import { GROUP_VERSION } from './discovery.js';
import { ApiError } from './status.js';
import { isObject, type Json } from './objects.js';

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Json;
}

/** What weft keeps per object at <prefix>/_weft/managed/<plural>/<name>: for that uid only. */
export interface ManagedRecord {
  uid: string;
  entries: ManagedFieldsEntry[];
}

type Path = string[];
const OWNED_ROOTS: Path[] = [['spec'], ['metadata', 'labels'], ['metadata', 'annotations']];
const key = (p: Path) => JSON.stringify(p);

export function getAt(obj: unknown, path: Path): unknown {
  let cur = obj;
  for (const seg of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

function setAt(obj: Json, path: Path, value: unknown): void {
  let cur = obj;
  for (const seg of path.slice(0, -1)) {
    if (!isObject(cur[seg])) cur[seg] = {};
    cur = cur[seg] as Json;
  }
  cur[path[path.length - 1]!] = structuredClone(value);
}

function deleteAt(obj: Json, path: Path): void {
  const parents: Json[] = [];
  let cur: unknown = obj;
  for (const seg of path.slice(0, -1)) {
    if (!isObject(cur)) return;
    parents.push(cur);
    cur = cur[seg];
  }
  if (!isObject(cur)) return;
  delete cur[path[path.length - 1]!];
  // Empty label and annotation maps go with their last key; spec stays.
  for (let i = path.length - 2; i >= 2; i--) {
    const parent = parents[i]!;
    const child = parent[path[i]!];
    if (isObject(child) && Object.keys(child).length === 0) delete parent[path[i]!];
  }
}

/** Every owned leaf of an object (a value that is not a non-empty map). */
export function leafPaths(obj: unknown): Map<string, Path> {
  const out = new Map<string, Path>();
  const walk = (v: unknown, p: Path) => {
    if (isObject(v) && Object.keys(v).length > 0) {
      for (const [k, child] of Object.entries(v)) walk(child, [...p, k]);
    } else out.set(key(p), p);
  };
  for (const root of OWNED_ROOTS) {
    const v = getAt(obj, root);
    if (v !== undefined) walk(v, root);
  }
  return out;
}

export function toFieldsV1(paths: Iterable<Path>): Json {
  const root: Json = {};
  for (const p of paths) {
    let cur = root;
    for (const seg of p) {
      const k = `f:${seg}`;
      if (!isObject(cur[k])) cur[k] = {};
      cur = cur[k] as Json;
    }
  }
  return root;
}

export function fromFieldsV1(f: unknown): Map<string, Path> {
  const out = new Map<string, Path>();
  const walk = (node: unknown, p: Path) => {
    const children = isObject(node) ? Object.keys(node).filter((k) => k.startsWith('f:')) : [];
    if (children.length === 0 && p.length) out.set(key(p), p);
    for (const k of children) walk((node as Json)[k], [...p, k.slice(2)]);
  };
  walk(f, []);
  return out;
}

export function describePath(p: Path): string {
  return p.map((s) => (/^[A-Za-z0-9_-]+$/.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`)).join('');
}

/** Reads a stored record; anything malformed (hostile etcd value) counts as no record. */
export function parseManagedRecord(text: string | undefined, uid: string | undefined): ManagedFieldsEntry[] {
  if (!text || text.length > 1024 * 1024 || !uid) return [];
  try {
    const v = JSON.parse(text) as unknown;
    if (!isObject(v) || v.uid !== uid || !Array.isArray(v.entries)) return [];
    return v.entries.filter(
      (e): e is ManagedFieldsEntry =>
        isObject(e) && typeof e.manager === 'string' && (e.operation === 'Apply' || e.operation === 'Update') && isObject(e.fieldsV1),
    );
  } catch {
    return [];
  }
}

function entry(manager: string, operation: 'Apply' | 'Update', paths: Iterable<Path>, now: Date): ManagedFieldsEntry {
  return {
    manager,
    operation,
    apiVersion: GROUP_VERSION,
    time: now.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    fieldsType: 'FieldsV1',
    fieldsV1: toFieldsV1(paths),
  };
}

function withPaths(entries: ManagedFieldsEntry[], f: (e: ManagedFieldsEntry, paths: Map<string, Path>) => Map<string, Path>): ManagedFieldsEntry[] {
  const out: ManagedFieldsEntry[] = [];
  for (const e of entries) {
    const paths = f(e, fromFieldsV1(e.fieldsV1));
    if (paths.size) out.push({ ...e, fieldsV1: toFieldsV1(paths.values()) });
  }
  return out;
}

/** Ownership after an Update by manager that turned before into after. */
export function recordUpdate(entries: ManagedFieldsEntry[], manager: string, before: unknown, after: unknown, now: Date): ManagedFieldsEntry[] {
  const old = leafPaths(before);
  const neu = leafPaths(after);
  const changed = new Map([...neu].filter(([k, p]) => !old.has(k) || !isDeepStrictEqual(getAt(before, p), getAt(after, p))));
  const mine = entries.find((e) => e.manager === manager && e.operation === 'Update');
  const kept = withPaths(entries, (e, paths) => {
    for (const k of [...paths.keys()]) {
      // A field that is gone (or became a map) belongs to nobody; a changed one now belongs
      // to this manager alone.
      if (!neu.has(k) || (changed.has(k) && e !== mine)) paths.delete(k);
    }
    return paths;
  });
  if (changed.size === 0) return kept;
  const myPaths = new Map([...(mine ? fromFieldsV1(mine.fieldsV1) : [])].filter(([k]) => neu.has(k)));
  for (const [k, p] of changed) myPaths.set(k, p);
  return [...kept.filter((e) => !(e.manager === manager && e.operation === 'Update')), entry(manager, 'Update', myPaths.values(), now)];
}

export interface ApplyResult {
  object: Json;
  entries: ManagedFieldsEntry[];
}

/**
 * Server-side apply of config by manager onto live (undefined: the object does not exist).
 * Throws a 409 naming every conflicting field unless force.
 */
export function applyConfig(live: Json | undefined, entries: ManagedFieldsEntry[], manager: string, config: Json, force: boolean, now: Date): ApplyResult {
  const base: Json = live ? structuredClone(live) : { apiVersion: config.apiVersion, kind: config.kind, metadata: { name: getAt(config, ['metadata', 'name']) } };
  const applied = leafPaths(config);
  const conflicts: { manager: string; path: Path }[] = [];
  for (const e of entries) {
    if (e.manager === manager && e.operation === 'Apply') continue;
    const theirs = fromFieldsV1(e.fieldsV1);
    for (const [k, p] of applied) {
      if (theirs.has(k) && !isDeepStrictEqual(getAt(base, p), getAt(config, p))) conflicts.push({ manager: e.manager, path: p });
    }
  }
  if (conflicts.length && !force) {
    const list = conflicts.map((c) => `conflict with "${c.manager}" using ${GROUP_VERSION}: ${describePath(c.path)}`);
    throw new ApiError(
      409,
      'Conflict',
      `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ${list.join('\n')}`,
      {
        ...(typeof getAt(config, ['metadata', 'name']) === 'string' ? { name: getAt(config, ['metadata', 'name']) as string } : {}),
        group: 'weft.io',
        causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${GROUP_VERSION}`, field: describePath(c.path) })),
      },
    );
  }
  const previous = entries.find((e) => e.manager === manager && e.operation === 'Apply');
  const ownedByOthers = new Set<string>();
  for (const e of entries) if (e !== previous) for (const k of fromFieldsV1(e.fieldsV1).keys()) ownedByOthers.add(k);
  if (previous) {
    for (const [k, p] of fromFieldsV1(previous.fieldsV1)) if (!applied.has(k) && !ownedByOthers.has(k)) deleteAt(base, p);
  }
  for (const p of applied.values()) setAt(base, p, getAt(config, p));
  const taken = new Set(conflicts.map((c) => key(c.path)));
  const others = withPaths(
    entries.filter((e) => e !== previous),
    (_, paths) => {
      for (const k of taken) paths.delete(k);
      return paths;
    },
  );
  return { object: base, entries: [...others, entry(manager, 'Apply', applied.values(), now)] };
}
