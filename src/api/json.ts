// Small helpers for JSON that users and other programs wrote.

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
