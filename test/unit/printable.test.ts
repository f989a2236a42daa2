// The one filter for text from hostile places: what counts as unprintable, and its three uses.
import { describe, expect, it } from 'vitest';
import { isPrintable, printable, printableLine } from '../../src/printable.js';

describe('printable text', () => {
  const hostile = ['\u0000', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009f', '\u061c', '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202e', '\u2066', '\u2069'];

  it('knows control characters, separators and bidi marks; lets other text through', () => {
    for (const c of hostile) expect(isPrintable(`a${c}b`), JSON.stringify(c)).toBe(false);
    for (const ok of ['plain', 'tab-free ünïcödé 名前', '\u00a0', '\u200d', '\u206a']) expect(isPrintable(ok)).toBe(true);
  });

  it('escapes each one for output, and folds runs into a space for a one-line reason', () => {
    expect(printable('a\u001b[31mb\nc\u202ed')).toBe('a\\u001b[31mb\\u000ac\\u202ed');
    expect(printableLine(' dial failed:\r\n\r\n  refused\u2066 ')).toBe('dial failed:   refused');
    // Repeated use: the global expressions keep no state between calls.
    expect([isPrintable('\n'), isPrintable('\n'), printable('\n'), printable('\n')]).toEqual([false, false, '\\u000a', '\\u000a']);
  });
});
