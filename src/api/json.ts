// Small helpers for JSON that users and other programs wrote.

/** `{ key: value }`, or `{}` when the value is undefined: an optional field of an encoded record. */
export function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

/** A field of a record as an encoder writes it: its name, ending in `?` when left out while undefined. */
export type FieldSpec<T> = (keyof T & string) | `${keyof T & string}?`;

/**
 * The listed fields of a record, in the order listed: the list, not how the record was built,
 * fixes the key order and so the bytes JSON.stringify writes. A field whose name ends in `?`
 * is left out when undefined; any other is always there.
 */
export function pickFields<T extends object>(record: T, fields: readonly FieldSpec<T>[]): Partial<T> {
  const out: Partial<T> = {};
  for (const field of fields) {
    const optional = field.endsWith('?');
    const key = (optional ? field.slice(0, -1) : field) as keyof T & string;
    if (!optional || record[key] !== undefined) out[key] = record[key];
  }
  return out;
}

/** A decoded value, or why it could not be decoded (for one etcd key; never thrown). */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Parses an untrusted value that must be a JSON object of at most maxBytes (checked before
 * parsing, so the work is bounded). `what` names the value in the error.
 */
export function parseJsonObject(text: string, maxBytes: number, what = 'value'): Decoded<Record<string, unknown>> {
  if (text.length > maxBytes) return { ok: false, error: `${what} is ${text.length} bytes, over ${maxBytes}` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `${what} is not valid JSON: ${(err as Error).message}` };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, error: `${what} is not a JSON object` };
  return { ok: true, value: raw as Record<string, unknown> };
}

/**
 * A struct field as Go's encoding/json (flanneld's readers) fills it: every key that equals
 * the field's name case-insensitively sets it, in document order, so the last one wins. Go
 * folds case by Unicode's simple folding, where the Kelvin sign is a k and the long s an s.
 * `key` is an ASCII field name.
 */
export function goField(obj: Record<string, unknown>, key: string): unknown {
  const want = goFold(key);
  let found: unknown = undefined;
  // Every agent start decodes each lease (several fields each) on its way to the first kernel
  // work: a plain loop; a key of another length is skipped unfolded (folding keeps the length
  // of every key that can equal an ASCII field name: the one character whose lower case is
  // longer, U+0130, becomes a non-ASCII pair), an exact match needs no fold, and the Unicode
  // folds run only for a key that has a non-ASCII character.
  for (const k of Object.keys(obj)) if (k.length === key.length && (k === key || goFold(k) === want)) found = obj[k];
  return found;
}

const NON_ASCII = /[^\x00-\x7f]/;

function goFold(k: string): string {
  return NON_ASCII.test(k) ? k.replace(/\u212a/g, 'k').replace(/\u017f/g, 's').toLowerCase() : k.toLowerCase();
}

/** A value as it appears in an error message: JSON, bounded, and honest about odd numbers. */
export function describeValue(v: unknown): string {
  if (v === undefined) return '(missing)';
  if (v === null) return 'null';
  // JSON would print Infinity and NaN as null, which is not what the user wrote.
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
