// The one filter between hostile text (etcd keys and values, manifest fields) and a terminal
// or a log line: C0 and C1 control characters, DEL, and the Unicode line separators and
// bidirectional controls (which can make a line read differently from its bytes) are shown
// as \uXXXX escapes.

/** Every character printable() escapes. */
export const UNPRINTABLE_CHARS = '\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';

const UNPRINTABLE_ALL = new RegExp(`[${UNPRINTABLE_CHARS}]`, 'g');
const UNPRINTABLE_ONE = new RegExp(`[${UNPRINTABLE_CHARS}]`);

export function printable(text: string): string {
  return text.replace(UNPRINTABLE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function hasUnprintable(text: string): boolean {
  return UNPRINTABLE_ONE.test(text);
}
