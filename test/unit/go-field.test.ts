// goField skips keys of another length and exact matches fold nothing (it runs for every field
// of every lease at start-up); it must pick the same value as folding every key, as Go's
// encoding/json does, on keys spelled in every case, with the Kelvin sign, the long s, the
// dotted capital I (whose lower case is two characters) and others around them.
import { describe, expect, it } from 'vitest';
import { goField } from '../../src/api/json.js';

/** goField as it was: every key folded. */
function reference(obj: Record<string, unknown>, key: string): unknown {
  const fold = (k: string) => (/[^\x00-\x7f]/.test(k) ? k.replace(/\u212a/g, 'k').replace(/\u017f/g, 's').toLowerCase() : k.toLowerCase());
  let found: unknown;
  for (const k of Object.keys(obj)) if (fold(k) === fold(key)) found = obj[k];
  return found;
}

function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 8) % n;
  };
}

const FIELDS = ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData', 'NodeName', 'VtepMAC', 'VNI', 'Kind', 'Subnets'];

/** A spelling of a field: random case, some letters swapped for look-alikes that fold (or not). */
function spell(field: string, rand: (n: number) => number): string {
  let out = '';
  for (const ch of field) {
    const r = rand(12);
    if ((ch === 'k' || ch === 'K') && r < 4) out += '\u212a';
    else if ((ch === 's' || ch === 'S') && r < 4) out += '\u017f';
    else if ((ch === 'i' || ch === 'I') && r < 2) out += '\u0130';
    else if (r < 1) out += '\u00e9';
    else out += r < 6 ? ch.toUpperCase() : ch.toLowerCase();
  }
  if (rand(10) === 0) out += rand(2) ? 's' : '';
  return out;
}

describe('goField', () => {
  it('picks what folding every key picks, on 20,000 random objects', () => {
    const rand = rng(3);
    for (let i = 0; i < 20_000; i++) {
      const obj: Record<string, unknown> = {};
      for (let j = 0, n = 1 + rand(6); j < n; j++) obj[spell(FIELDS[rand(FIELDS.length)]!, rand)] = j;
      for (const field of FIELDS) expect([obj, field, goField(obj, field)]).toEqual([obj, field, reference(obj, field)]);
    }
  });

  it('folds the Kelvin sign and the long s, not the dotted capital I', () => {
    expect(goField({ '\u212aind': 1 }, 'Kind')).toBe(1);
    expect(goField({ '\u017fubnets': 2 }, 'Subnets')).toBe(2);
    expect(goField({ 'Publ\u0130cIP': 3 }, 'PublicIP')).toBeUndefined();
    expect(goField({ PublicIP: 1, publicip: 2 }, 'PublicIP')).toBe(2);
  });
});
