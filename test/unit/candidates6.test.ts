// Free IPv6 subnets: small ranges are walked like IPv4 ones; large ones (a /48 of /64s holds
// 65,536 subnets, a /32 four billion) are sampled, never enumerated.
import { describe, expect, it } from 'vitest';
import { Cidr6 } from '../../src/alloc/cidr.js';
import { ENUMERATE_LIMIT, freeSubnets6, randomBelow, type Range6 } from '../../src/alloc/candidates.js';
import { resolveNetworkOrThrow } from '../../src/api/network.js';

/** A seeded PRNG (mulberry32) that also counts how often it was asked. */
function seeded(seed: number): { random: () => number; calls: () => number } {
  let a = seed >>> 0;
  let n = 0;
  return {
    random: () => {
      n++;
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
    calls: () => n,
  };
}

function rangeOf(ipv6Cidr: string, extra: Record<string, unknown> = {}): Range6 {
  const s = resolveNetworkOrThrow('n', { ipv6Cidr, backend: { type: 'vxlan' }, ...extra }).ipv6!;
  return { network: s.network, subnetLen: s.subnetLen, min: s.subnetMin.value, max: s.subnetMax.value };
}

function expectValid(range: Range6, got: Cidr6[], taken: Cidr6[] = []): void {
  expect(new Set(got.map(String)).size).toBe(got.length);
  for (const c of got) {
    expect(c.prefix).toBe(range.subnetLen);
    expect(c.first >= range.min && c.first <= range.max, String(c)).toBe(true);
    expect(range.network.contains(c)).toBe(true);
    expect(taken.some((t) => t.overlaps(c)), `${c} is taken`).toBe(false);
  }
}

describe('IPv6 free-subnet candidates', () => {
  it('a /48 of /64s: 100 random candidates spread over the range, none taken', () => {
    const range = rangeOf('fd00:5::/48');
    const { random, calls } = seeded(1);
    // The first 30,000 subnets are taken: a walk from the start would spend 30,000 steps.
    const taken = Array.from({ length: 30_000 }, (_, i) => Cidr6.of(range.network.network.add(BigInt(i) << 64n), 64));
    const started = performance.now();
    const got = freeSubnets6(range, taken, 100, random);
    const ms = performance.now() - started;
    expect(got).toHaveLength(100);
    expectValid(range, got);
    const takenFirsts = new Set(taken.map((t) => String(t.first >> 64n)));
    expect(got.some((c) => takenFirsts.has(String(c.first >> 64n)))).toBe(false);
    console.log(`/48 with 30,000 of 65,535 taken: 100 candidates in ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(2000); // generous for a loaded machine; about 5 ms here
    // Spread: drawn from all over the range, not bunched at its start.
    const high = got.filter((c) => c.first >= range.network.first + (40_000n << 64n)).length;
    expect(high).toBeGreaterThan(20);
    // Bounded work: at most 20 draws per candidate, one 32-bit word each (plus rare rejections).
    expect(calls()).toBeLessThan(100 * 20 * 2);
  });

  it('a /32 of /64s (four billion subnets): 100 candidates from a few hundred draws', () => {
    const range = rangeOf('fd00::/32');
    expect((range.max - range.min) / (1n << 64n) + 1n).toBe(4_294_967_295n);
    const { random, calls } = seeded(2);
    const started = performance.now();
    const got = freeSubnets6(range, [], 100, random);
    const ms = performance.now() - started;
    expect(got).toHaveLength(100);
    expectValid(range, got);
    expect(calls()).toBeLessThan(1000);
    console.log(`/32: 100 candidates in ${ms.toFixed(1)} ms from ${calls()} random draws`);
  });

  it('never offers a subnet inside an odd-sized taken block (a hand-written /49 over half a /48)', () => {
    const range = rangeOf('fd00:5::/48');
    const half = Cidr6.parse('fd00:5::/49')!;
    const got = freeSubnets6(range, [half], 100, seeded(3).random);
    expect(got).toHaveLength(100);
    expectValid(range, got, [half]);
  });

  it('gives fewer (or none) when draws keep hitting taken space, instead of looping', () => {
    const range = rangeOf('fd00:5::/48');
    const { random, calls } = seeded(4);
    expect(freeSubnets6(range, [Cidr6.parse('fd00:5::/48')!], 100, random)).toEqual([]);
    expect(calls()).toBeLessThanOrEqual(100 * 20 * 64);
    // A constant random (a degenerate injected source) still terminates.
    expect(freeSubnets6(range, [], 100, () => 0.999999).length).toBeGreaterThan(0);
  });

  it('walks a small range in address order, as IPv4 does, and finds the last free subnet of a nearly full one', () => {
    const range = rangeOf('fd00:5::/116', { ipv6SubnetLength: 120 }); // 15 subnets after the first
    expect((range.max - range.min) / 256n + 1n).toBe(15n);
    expect(freeSubnets6(range, [], 3, () => 0).map(String)).toEqual(['fd00:5::100/120', 'fd00:5::200/120', 'fd00:5::300/120']);
    const all = freeSubnets6(range, [], 100);
    expect(all).toHaveLength(15);
    const taken = all.filter((c) => !c.equals(Cidr6.parse('fd00:5::b00/120')!));
    expect(freeSubnets6(range, taken, 100).map(String)).toEqual(['fd00:5::b00/120']);
    expect(freeSubnets6(range, all, 100)).toEqual([]);
  });

  it('switches from walking to sampling above ENUMERATE_LIMIT subnets', () => {
    const { random, calls } = seeded(5);
    const small = rangeOf('fd00:5::/52'); // 4,095 subnets: walked, no randomness used
    expect(freeSubnets6(small, [], 100, random)[0]!.toString()).toBe('fd00:5:0:1::/64');
    expect(calls()).toBe(0);
    expect((small.max - small.min) / (1n << 64n) + 1n <= ENUMERATE_LIMIT).toBe(true);
    const large = rangeOf('fd00:5::/51'); // 8,191 subnets: sampled
    freeSubnets6(large, [], 100, random);
    expect(calls()).toBeGreaterThan(0);
  });
});

describe('randomBelow', () => {
  it('stays below n for any size, and covers small ranges', () => {
    const { random } = seeded(6);
    const seen = new Set<bigint>();
    for (let i = 0; i < 200; i++) seen.add(randomBelow(5n, random));
    expect([...seen].sort()).toEqual([0n, 1n, 2n, 3n, 4n]);
    const big = (1n << 100n) + 3n;
    for (let i = 0; i < 100; i++) {
      const v = randomBelow(big, random);
      expect(v >= 0n && v < big).toBe(true);
    }
    expect(randomBelow(1n, random)).toBe(0n);
    expect(randomBelow(3n, () => 0.9999999)).toBeLessThan(3n);
  });
});
