// Which subnets of a network are free, computed from the keys that exist. Pure.
import { Cidr } from './cidr.js';

export interface Range {
  network: Cidr;
  subnetLen: number;
  /** Network address of the first and last assignable subnet. */
  min: number;
  max: number;
}

/**
 * The first `limit` subnets between min and max that overlap none of `taken`, in address
 * order. Overlap, not equality: a hand-written /23 key blocks both /24s inside it.
 */
export function freeSubnets(range: Range, taken: Iterable<Cidr>, limit = 100): Cidr[] {
  const size = 2 ** (32 - range.subnetLen);
  const exact = new Set<number>();
  const odd: Cidr[] = [];
  for (const t of taken) {
    if (t.prefix === range.subnetLen) exact.add(t.first);
    else odd.push(t);
  }
  const out: Cidr[] = [];
  for (let addr = range.min; addr <= range.max && out.length < limit; addr += size) {
    if (exact.has(addr)) continue;
    const candidate = Cidr.of(range.network.network.add(addr - range.network.first), range.subnetLen);
    if (odd.some((o) => o.overlaps(candidate))) continue;
    out.push(candidate);
  }
  return out;
}

/** Uniformly random element; `random` is injected so tests are deterministic. */
export function pickRandom<T>(items: T[], random: () => number = Math.random): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}
