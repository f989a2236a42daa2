// Small helpers for JSON that users and other programs wrote.

/** A decoded value, or why it could not be decoded (for one etcd key; never thrown). */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parses an untrusted value that must be a JSON object of at most maxBytes. */
export function parseJsonObject(text: string, maxBytes: number): Decoded<Record<string, unknown>> {
  if (text.length > maxBytes) return { ok: false, error: `value is ${text.length} bytes, over ${maxBytes}` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: 'value is not valid JSON' };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { ok: false, error: 'value is not a JSON object' };
  return { ok: true, value: raw as Record<string, unknown> };
}

/** Go's encoding/json matches keys case-insensitively (flanneld's readers); so do we. */
export function goField(obj: Record<string, unknown>, key: string): unknown {
  if (key in obj) return obj[key];
  const lower = key.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) return v;
  return undefined;
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
