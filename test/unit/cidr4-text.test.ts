// Ipv4.parse reads dotted quads with its own loop (it runs for every lease at start-up); it must
// accept exactly what the strict pattern it replaced accepts, with the same value: random valid
// addresses, edge values, and random junk made of the characters that matter.
import { Address4 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { Ipv4 } from '../../src/alloc/cidr.js';

/** The pattern Ipv4.parse used before (and ip-address for the value). */
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const reference = (text: string): number | undefined => (DOTTED_QUAD.test(text) ? Number(new Address4(text).bigInt()) : undefined);

function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 8) % n;
  };
}

describe('Ipv4 text', () => {
  it('agrees with the strict pattern on edge values and random valid addresses', () => {
    const edges = ['0.0.0.0', '255.255.255.255', '10.5.1.0', '1.2.3.4', '199.249.250.9', '100.10.0.99', '256.0.0.0', '0.0.0.256', '01.2.3.4', '1.2.3.04', '1.2.3.00', '1.2.3', '1.2.3.4.5', '1..2.3', '.1.2.3', '1.2.3.', ' 1.2.3.4', '1.2.3.4 ', '1.2.3.4\n', '1.2.3.-4', '1.2.3.+4', '1.2.3.4/24', '１.2.3.4', '1.2.3.1000', '999.1.1.1', '', '0x1.2.3.4'];
    const rand = rng(7);
    const random = Array.from({ length: 20_000 }, () => Array.from({ length: 4 }, () => String(rand(3) === 0 ? rand(10) : rand(256))).join('.'));
    for (const text of [...edges, ...random]) expect([text, Ipv4.parse(text)?.value]).toEqual([text, reference(text)]);
  });

  it('agrees with the strict pattern on random junk of digits, dots and a few other characters', () => {
    const rand = rng(11);
    const alphabet = '0123456789.....0125 x-/:';
    let valid = 0;
    for (let i = 0; i < 100_000; i++) {
      const text = Array.from({ length: 5 + rand(12) }, () => alphabet[rand(alphabet.length)]).join('');
      const want = reference(text);
      if (want !== undefined) valid++;
      expect([text, Ipv4.parse(text)?.value]).toEqual([text, want]);
    }
    expect(valid).toBeGreaterThan(10); // the junk does reach valid addresses
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 1, {}, ['1.2.3.4']]) expect(Ipv4.parse(v)).toBeUndefined();
  });
});
