// Ipv6's own reading and writing of hex-colon text must agree with ip-address (the reference
// it replaced for speed) on every input: random valid addresses in every spelling, and random
// junk made of the characters that matter.
import { Address6 } from 'ip-address';
import { describe, expect, it } from 'vitest';
import { Ipv6 } from '../../src/alloc/cidr.js';

function rng(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 8) % n;
  };
}

/** A random address with runs of zero groups, the case where canonical forms differ. */
function randomValue(rand: (n: number) => number): bigint {
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 16n) | BigInt(rand(3) === 0 ? rand(0x10000) : rand(4) === 0 ? rand(16) : 0);
  return v;
}

/** Some spelling of a value: full, zero-padded, upper case, or compressed at a random zero run. */
function spell(v: bigint, rand: (n: number) => number): string {
  const groups = v.toString(16).padStart(32, '0').match(/.{4}/g)!.map((g) => (rand(2) ? g : Number.parseInt(g, 16).toString(16)));
  let text = groups.join(':');
  const zeroRuns = [...text.matchAll(/(^|:)(0{1,4}(:0{1,4})*)(?=:|$)/g)];
  if (zeroRuns.length > 0 && rand(3) > 0) {
    const m = zeroRuns[rand(zeroRuns.length)]!;
    const start = m.index! + m[1]!.length;
    text = `${text.slice(0, start)}:${text.slice(start + m[2]!.length)}`.replace(/^:(?!:)/, '::').replace(/(?<!:):$/, '::');
    if (!text.includes('::')) text = text.replace(/:(?=:)|$/, ':');
  }
  return rand(4) === 0 ? text.toUpperCase() : text;
}

describe('Ipv6 text', () => {
  it('reads every spelling of random addresses as ip-address does', () => {
    const rand = rng(5);
    let compressed = 0;
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(rand);
      const text = spell(v, rand);
      const ours = Ipv6.parse(text);
      const ref = Address6.isValid(text) ? new Address6(text).bigInt() : undefined;
      expect(ours?.value, text).toBe(ref);
      if (ref === v && text.includes('::')) compressed++;
    }
    expect(compressed).toBeGreaterThan(1000); // compressed spellings were really exercised
  });

  it('refuses the same junk as ip-address', () => {
    const rand = rng(11);
    const alphabet = ['0', '1', 'a', 'F', 'f', ':', ':', ':', '::', 'g', '.', '12345', 'ffff'];
    let valid = 0;
    for (let i = 0; i < 20000; i++) {
      let text = '';
      for (let n = 1 + rand(14); n > 0; n--) text += alphabet[rand(alphabet.length)];
      const ref = /^[0-9A-Fa-f:]{2,39}$/.test(text) && Address6.isValid(text) ? new Address6(text).bigInt() : undefined;
      if (ref !== undefined) valid++;
      expect(Ipv6.parse(text)?.value, text).toBe(ref);
    }
    expect(valid).toBeGreaterThan(100); // both sides were really exercised
  });

  it('writes the RFC 5952 form ip-address writes', () => {
    const rand = rng(7);
    for (let i = 0; i < 5000; i++) {
      const v = randomValue(rand);
      expect(Ipv6.fromBigInt(v).toString()).toBe(Address6.fromBigInt(v).correctForm());
    }
    for (const [text, canonical] of [
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
      ['1:0:0:0:1:0:0:0', '1::1:0:0:0'],
      ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
      ['0:0:0:0:0:0:0:0', '::'],
      ['2001:DB8::0001', '2001:db8::1'],
    ] as const) {
      expect(Ipv6.parse(text)!.toString()).toBe(canonical);
    }
  });

  it('checks user input with ip-address as well, and keeps equal addresses structurally equal', () => {
    expect(Ipv6.parseChecked('fd00:5::1')!.toString()).toBe('fd00:5::1');
    expect(Ipv6.parseChecked('fd00:5::1%eth0')).toBeUndefined();
    const a = Ipv6.parse('fd00::1')!;
    const b = Ipv6.parse('FD00:0::1')!;
    a.toString();
    expect(a).toEqual(b);
  });
});
