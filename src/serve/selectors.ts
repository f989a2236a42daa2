// labelSelector and fieldSelector, as Kubernetes parses them (equality and set-based label
// requirements; field equality on metadata.name and a few per-kind fields).
import type { Printable } from '../api/types.js';
import type { ServedResource } from './kinds.js';
import { badRequest } from './status.js';

export type Filter = (o: Printable) => boolean;

const MAX_SELECTOR = 4096;

/** Splits on commas outside parentheses: "a in (x,y),b" -> ["a in (x,y)", "b"]. */
function requirements(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of text) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

export function labelFilter(text: string | null): Filter {
  if (!text) return () => true;
  if (text.length > MAX_SELECTOR) throw badRequest('labelSelector is too long');
  const tests: ((labels: Record<string, string>) => boolean)[] = [];
  for (const req of requirements(text)) {
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=,()]+)\s*(==|=|!=)\s*([^\s,()]*)$/.exec(req))) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      tests.push(op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value);
    } else if ((m = /^([^\s!=,()]+)\s+(in|notin)\s+\(([^()]*)\)$/.exec(req))) {
      const [, key, op, list] = m as unknown as [string, string, string, string];
      const values = new Set(list.split(',').map((v) => v.trim()));
      tests.push(op === 'in' ? (l) => l[key] !== undefined && values.has(l[key]) : (l) => l[key] === undefined || !values.has(l[key]));
    } else if ((m = /^!\s*([^\s!=,()]+)$/.exec(req))) {
      const key = m[1]!;
      tests.push((l) => !(key in l));
    } else if ((m = /^([^\s!=,()]+)$/.exec(req))) {
      const key = m[1]!;
      tests.push((l) => key in l);
    } else {
      throw badRequest(`unable to parse requirement: ${JSON.stringify(req)}`);
    }
  }
  return (o) => {
    const labels = o.metadata.labels ?? {};
    return tests.every((t) => t(labels));
  };
}

export function fieldFilter(text: string | null, resource: ServedResource): Filter {
  if (!text) return () => true;
  if (text.length > MAX_SELECTOR) throw badRequest('fieldSelector is too long');
  const tests: Filter[] = [];
  for (const req of requirements(text)) {
    const m = /^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$/.exec(req);
    if (!m) throw badRequest(`invalid selector: '${req}'; can't understand '${req}'`);
    const [, field, op, value] = m as unknown as [string, string, string, string];
    const read = field === 'metadata.name' ? (o: Printable) => o.metadata.name : resource.fields[field];
    if (!read) throw badRequest(`field label not supported: ${field}`);
    tests.push(op === '!=' ? (o) => read(o) !== value : (o) => read(o) === value);
  }
  return (o) => tests.every((t) => t(o));
}
