// Ipv4.parse reads dotted quads with its own loop (it runs for every lease at start-up); it must
// accept exactly what the strict pattern it replaced accepts, with the same value: random valid
// addresses, edge values, and random junk made of the characters that matter.
import { Address4 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { Cidr, Ipv4 } from '../../src/alloc/cidr.js';

/** The pattern Ipv4.parse used before (and ip-address for the value). */
const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const reference = (text: string): number | undefined => (DOTTED_QUAD.test(text) ? Number(new Address4(text).bigInt()) : undefined);

/** Cidr.parse and Cidr.fromKey as they were: a pattern, then the address. */
function referenceCidr(text: string, sep: '/' | '-', strict: boolean): string | undefined {
  const m = (sep === '/' ? /^([0-9.]+)\/(\d{1,2})$/ : /^([0-9.]+)-(\d{1,2})$/).exec(text);
  if (!m) return undefined;
  const ip = reference(m[1]!);
  const prefix = Number(m[2]);
  if (ip === undefined || prefix > 32 || String(prefix) !== m[2]) return undefined;
  const masked = prefix === 0 ? 0 : (ip & (~0 << (32 - prefix))) >>> 0;
  if (strict && masked !== ip) return undefined;
  return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${prefix}`;
}

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

  it('reads CIDRs and lease keys as the patterns did', () => {
    const rand = rng(13);
    const alphabet = '0123456789....0/-- 8';
    const texts = ['10.5.1.0/24', '10.5.1.0-24', '10.5.1.1/24', '10.5.1.1-24', '0.0.0.0/0', '0.0.0.0-0', '10.5.1.0/33', '10.5.1.0/024', '10.5.1.0/', '10.5.1.0-', '/24', '10.5.1.0/24/1', '10.5.1.0-24-1', '10.5.1.0/2a', '10.5.1.0 /24', '10.0.0.0/08', '10.0.0.0-08', '0.0.0.0/00', '0.0.0.0-00', '10.0.0.0-8 ', '10.0.0.0-+8', '10.0.0.0-3', '10.0.0.0-32', '10.0.0.0-3\u0662'];
    for (let i = 0; i < 50_000; i++) {
      const quad = Array.from({ length: 4 }, () => String(rand(4) === 0 ? rand(300) : rand(4) * 64)).join('.');
      texts.push(rand(3) === 0 ? Array.from({ length: 5 + rand(14) }, () => alphabet[rand(alphabet.length)]).join('') : `${quad}${rand(2) ? '/' : '-'}${rand(36)}`);
    }
    for (const text of texts) {
      expect([text, Cidr.parse(text)?.toString()]).toEqual([text, referenceCidr(text, '/', false)]);
      expect([text, Cidr.parse(text, { strict: true })?.toString()]).toEqual([text, referenceCidr(text, '/', true)]);
      expect([text, Cidr.fromKey(text)?.toString()]).toEqual([text, referenceCidr(text, '-', true)]);
    }
  });

  it('refuses what is not a string', () => {
    for (const v of [undefined, null, 1, {}, ['1.2.3.4']]) expect(Ipv4.parse(v)).toBeUndefined();
  });
});
