// IPv4 addresses and CIDR blocks as small immutable values.
//
// Parsing goes through ip-address (strict dotted-quad form); everything after parsing is
// plain uint32 arithmetic so that planners can compare thousands of subnets cheaply.
import { Address4 } from 'ip-address';

const DOTTED_QUAD = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export class Ipv4 {
  private constructor(readonly value: number) {}

  /**
   * Parses a strict dotted quad ("10.5.1.0"); returns undefined for anything else. This runs
   * for every lease an agent lists (thousands at start-up), so once the pattern has checked
   * the form, the value is computed from its parts directly.
   */
  static parse(text: unknown): Ipv4 | undefined {
    if (typeof text !== 'string' || !DOTTED_QUAD.test(text)) return undefined;
    const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number];
    return new Ipv4((((a << 24) | (b << 16) | (c << 8) | d) >>> 0));
  }

  /** The same, through ip-address: for user input, where a second opinion costs nothing. */
  static parseChecked(text: unknown): Ipv4 | undefined {
    const fast = Ipv4.parse(text);
    if (!fast || !Address4.isValid(text as string)) return undefined;
    const checked = Number(new Address4(text as string).bigInt());
    return checked === fast.value ? fast : undefined;
  }

  static fromNumber(value: number): Ipv4 {
    return new Ipv4(value >>> 0);
  }

  add(n: number): Ipv4 {
    return Ipv4.fromNumber(this.value + n);
  }

  equals(other: Ipv4): boolean {
    return this.value === other.value;
  }

  toString(): string {
    const v = this.value;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
}

export class Cidr {
  private constructor(
    readonly network: Ipv4,
    readonly prefix: number,
  ) {}

  /**
   * Parses "a.b.c.d/n". With `strict`, host bits must be zero ("10.5.0.1/16" is refused);
   * without it they are masked, as flanneld does for the Network field.
   */
  static parse(text: unknown, opts: { strict?: boolean } = {}): Cidr | undefined {
    if (typeof text !== 'string') return undefined;
    const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
    if (!m) return undefined;
    const ip = Ipv4.parse(m[1]);
    const prefix = Number(m[2]);
    if (!ip || prefix > 32 || String(prefix) !== m[2]) return undefined;
    const masked = ip.value & maskOf(prefix);
    if (opts.strict && masked >>> 0 !== ip.value) return undefined;
    return new Cidr(Ipv4.fromNumber(masked), prefix);
  }

  static of(network: Ipv4, prefix: number): Cidr {
    return new Cidr(Ipv4.fromNumber(network.value & maskOf(prefix)), prefix);
  }

  /** Number of addresses in the block. */
  get size(): number {
    return 2 ** (32 - this.prefix);
  }

  get first(): number {
    return this.network.value;
  }

  get last(): number {
    return this.network.value + this.size - 1;
  }

  hasHostBits(text: string): boolean {
    const ip = Ipv4.parse(text.split('/')[0]);
    return ip !== undefined && ip.value !== this.network.value;
  }

  contains(other: Cidr | Ipv4): boolean {
    if (other instanceof Ipv4) return other.value >= this.first && other.value <= this.last;
    return other.first >= this.first && other.last <= this.last;
  }

  overlaps(other: Cidr): boolean {
    return this.first <= other.last && other.first <= this.last;
  }

  equals(other: Cidr): boolean {
    return this.prefix === other.prefix && this.network.value === other.network.value;
  }

  /** Whether this block starts on a boundary of blocks of the given prefix length. */
  alignedTo(prefix: number): boolean {
    return (this.network.value & maskOf(prefix)) >>> 0 === this.network.value;
  }

  /** The first usable address (network + 1), the bridge address in subnet.env. */
  get gateway(): Ipv4 {
    return this.network.add(1);
  }

  toString(): string {
    return `${this.network.toString()}/${this.prefix}`;
  }

  /** Flannel's lease key form: "10.5.3.0-24". */
  toKey(): string {
    return `${this.network.toString()}-${this.prefix}`;
  }

  static fromKey(key: string): Cidr | undefined {
    const m = /^([0-9.]+)-(\d{1,2})$/.exec(key);
    if (!m) return undefined;
    return Cidr.parse(`${m[1]}/${m[2]}`, { strict: true });
  }
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A unicast MAC in canonical lowercase colon form, or undefined. */
export function parseMac(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const lower = text.toLowerCase();
  if (!MAC.test(lower)) return undefined;
  if (parseInt(lower.slice(0, 2), 16) & 1) return undefined; // multicast
  if (lower === '00:00:00:00:00:00') return undefined;
  return lower;
}
