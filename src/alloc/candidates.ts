// Which subnets of a network are free, computed from the keys that exist. Pure.
// IPv4 ranges are small enough to walk; IPv6 ones are sampled when large.
import { Cidr, Cidr6, Ipv6 } from './cidr.js';

export interface Range {
  network: Cidr;
  subnetLen: number;
  /** Network address of the first and last assignable subnet. */
  min: number;
  max: number;
}

/**
 * The first `limit` subnets between min and max that overlap none of `taken`, in address
 * order. Overlap, not equality: a hand-written /23 key blocks both /24s inside it. The walk
 * jumps over blocks of other lengths instead of testing each candidate against them, so its
 * cost is bounded by the number of keys plus `limit`, never by the size of the range (a /8 of
 * /30s has four million candidates; a /9 key across half of them is one jump).
 */
export function freeSubnets(range: Range, taken: Iterable<Cidr>, limit = 100): Cidr[] {
  const size = 2 ** (32 - range.subnetLen);
  const exact = new Set<number>();
  const odd: { first: number; last: number }[] = [];
  for (const t of taken) {
    if (t.prefix === range.subnetLen) exact.add(t.first);
    else odd.push({ first: t.first, last: t.last });
  }
  // Disjoint, sorted blocks.
  odd.sort((a, b) => a.first - b.first);
  const blocks: { first: number; last: number }[] = [];
  for (const o of odd) {
    const prev = blocks[blocks.length - 1];
    if (prev && o.first <= prev.last + 1) prev.last = Math.max(prev.last, o.last);
    else blocks.push({ ...o });
  }
  const out: Cidr[] = [];
  let b = 0;
  for (let addr = range.min; addr <= range.max && out.length < limit; addr += size) {
    while (b < blocks.length && blocks[b]!.last < addr) b++;
    const block = blocks[b];
    if (block && block.first <= addr + size - 1) {
      // Jump to the first aligned candidate after the block (the loop adds one size).
      addr = range.min + Math.ceil((block.last + 1 - range.min) / size) * size - size;
      continue;
    }
    if (exact.has(addr)) continue;
    out.push(Cidr.of(range.network.network.add(addr - range.network.first), range.subnetLen));
  }
  return out;
}

/** Uniformly random element; `random` is injected so tests are deterministic. */
export function pickRandom<T>(items: T[], random: () => number = Math.random): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}

export interface Range6 {
  network: Cidr6;
  subnetLen: number;
  /** Network address of the first and last assignable subnet. */
  min: bigint;
  max: bigint;
}

/**
 * Ranges with at most this many subnets are enumerated like IPv4 ranges; larger ones are
 * sampled (a /48 of /64s holds 65,536 subnets, a /32 four billion: never walk those).
 */
export const ENUMERATE_LIMIT = 4096n;

/** How many random draws sampling may spend per wanted candidate before settling for fewer. */
const DRAWS_PER_CANDIDATE = 20;

/**
 * Up to `limit` free IPv6 subnets between min and max, overlapping none of `taken`. A small
 * range gives the first free ones in address order (as IPv4); a large one gives random ones,
 * drawn by index with bigint maths and rejected when taken, overlapping or already drawn, so
 * the cost depends on `limit` and `taken`, never on the size of the range. Fewer than
 * `limit` (or none) only when the draws and a bounded walk after them kept hitting taken space.
 */
export function freeSubnets6(
  range: Range6,
  taken: Iterable<Cidr6>,
  limit = 100,
  random: () => number = Math.random,
): Cidr6[] {
  if (range.max < range.min) return [];
  const hostBits = BigInt(128 - range.subnetLen);
  const size = 1n << hostBits;
  const count = (range.max - range.min) / size + 1n;
  // Keyed by subnet number (address >> host bits), not by address: V8 hashes a bigint by its
  // low bits, which are all zero for subnet addresses, and a Set of them degrades to a list.
  const exact = new Set<bigint>();
  const odd: Cidr6[] = [];
  for (const t of taken) {
    if (t.prefix === range.subnetLen) exact.add(t.first >> hostBits);
    else odd.push(t);
  }
  const subnetAt = (index: bigint) => Cidr6.of(Ipv6.fromBigInt(range.min + index * size), range.subnetLen);
  const free = (c: Cidr6) => !exact.has(c.first >> hostBits) && !odd.some((o) => o.overlaps(c));

  const out: Cidr6[] = [];
  if (count <= ENUMERATE_LIMIT) {
    for (let i = 0n; i < count && out.length < limit; i++) {
      const c = subnetAt(i);
      if (free(c)) out.push(c);
    }
    return out;
  }
  const budget = limit * DRAWS_PER_CANDIDATE;
  const drawn = new Set<bigint>();
  for (let draws = 0; draws < budget && out.length < limit; draws++) {
    const index = randomBelow(count, random);
    if (drawn.has(index)) continue;
    drawn.add(index);
    const c = subnetAt(index);
    if (free(c)) out.push(c);
  }
  // Draws that kept landing on taken subnets (a crowded part of the range, or a poor random
  // source): walk on from a random index, within the same budget, before giving up.
  let index = randomBelow(count, random);
  for (let steps = 0; steps < budget && out.length < limit; steps++, index = (index + 1n) % count) {
    if (drawn.has(index)) continue;
    const c = subnetAt(index);
    if (free(c)) out.push(c);
  }
  return out;
}

/**
 * A uniformly random bigint in [0, n), from 32 random bits per call of `random` (rejection
 * sampling, so no modulo bias; under two tries on average). A degenerate `random` (a constant,
 * in a test) cannot make it loop forever: after 64 rejections it takes the value modulo n.
 */
export function randomBelow(n: bigint, random: () => number = Math.random): bigint {
  if (n <= 1n) return 0n;
  const bits = (n - 1n).toString(2).length;
  const words = Math.ceil(bits / 32);
  const excess = BigInt(words * 32 - bits);
  let v = 0n;
  for (let tries = 0; tries < 64; tries++) {
    v = 0n;
    for (let i = 0; i < words; i++) v = (v << 32n) | BigInt(Math.min(0xffffffff, Math.floor(random() * 2 ** 32)));
    v >>= excess;
    if (v < n) return v;
  }
  return v % n;
}
