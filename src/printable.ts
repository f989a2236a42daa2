// Text from hostile places (etcd values, YAML, error messages quoting them) shown to an
// operator: the one definition of what may not reach a terminal or a log line raw. A leaf:
// the API's validation, the CLI's output, the agent's status and the log format all use it.

/**
 * C0 and C1 control characters and DEL (a terminal escape, a newline forging a second line),
 * the line and paragraph separators, and the bidi marks and overrides that make text read
 * differently from what it is.
 */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
const EACH = new RegExp(UNPRINTABLE.source, 'g');
const RUNS = new RegExp(`${UNPRINTABLE.source}+`, 'g');

/** True when the text holds none of those characters. */
export function isPrintable(text: string): boolean {
  return !UNPRINTABLE.test(text);
}

/** A character as \uXXXX: what a terminal shows as text, and a valid escape inside a JSON string. */
export function unicodeEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** Each such character as a \uXXXX escape, so the reader sees that it was there. */
export function printable(text: string): string {
  return escapeUnprintable(text, unicodeEscape);
}

/** Each such character replaced by what escape makes of it. */
export function escapeUnprintable(text: string, escape: (c: string) => string): string {
  return text.replace(EACH, escape);
}

/** One plain line: each run of such characters becomes a space, and the ends are trimmed. */
export function printableLine(text: string): string {
  return text.replace(RUNS, ' ').trim();
}
