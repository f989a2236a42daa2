// IPv4 and IPv6 addresses and CIDR blocks as small immutable values.
//
// Parsing goes through ip-address (strict textual forms); everything after parsing is plain
// arithmetic (uint32 for IPv4, bigint for IPv6) so that planners can compare thousands of
// subnets cheaply. Code that works for both stacks takes the unions IpAddr and IpNet; a
// comparison across families is simply false.
import { Address4, Address6 } from 'ip-address';

export class Ipv4 {
  private constructor(readonly value: number) {}

  get family(): 4 {
    return 4;
  }

  /**
   * Parses a strict dotted quad ("10.5.1.0": four decimal parts of 0-255, no leading zeros);
   * returns undefined for anything else. This runs for every lease an agent lists (thousands
   * at start-up, on the way to its first kernel work): one pass over the characters, where a
   * pattern and a split took ~2 us a lease (test/unit/cidr4-text checks it against the pattern).
   */
  static parse(text: unknown): Ipv4 | undefined {
    if (typeof text !== 'string') return undefined;
    const value = dottedQuadValue(text, 0, text.length);
    return value < 0 ? undefined : new Ipv4(value);
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

  equals(other: IpAddr): boolean {
    return other.family === 4 && this.value === other.value;
  }

  toString(): string {
    const v = this.value;
    return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
}

/**
 * The value of the strict dotted quad text[start, end) (see Ipv4.parse), or -1: a range, so
 * that a lease key's address is read where it stands, without a copy.
 */
function dottedQuadValue(text: string, start: number, end: number): number {
  if (end - start < 7 || end - start > 15) return -1;
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46; // a '.' after the last part
    if (c === 46) {
      if (digits === 0 || part > 255) return -1;
      value = value * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && part === 0) return -1; // a leading zero
      if (++digits > 3) return -1;
      part = part * 10 + (c - 48);
    } else {
      return -1;
    }
  }
  return parts === 4 ? value : -1;
}

/**
 * The prefix length text[start, end): one or two decimal digits without a leading zero, at
 * most 32 (what /^\d{1,2}$/ and a round trip through Number accepted), or -1.
 */
function prefixLengthValue(text: string, start: number, end: number): number {
  if (end - start < 1 || end - start > 2) return -1;
  const first = text.charCodeAt(start) - 48;
  if (first < 0 || first > 9) return -1;
  if (end - start === 1) return first;
  const second = text.charCodeAt(start + 1) - 48;
  if (first === 0 || second < 0 || second > 9) return -1;
  const prefix = first * 10 + second;
  return prefix > 32 ? -1 : prefix;
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
    const slash = text.indexOf('/');
    return slash < 0 ? undefined : Cidr.fromParts(text, slash, opts.strict === true);
  }

  /**
   * The dotted quad before text[sep] and the prefix length after it, as parse() and fromKey()
   * split them. Every listed lease's key comes here (thousands at start-up): read in place,
   * where slices, a pattern and a round trip through Number cost a third of the key's parse.
   */
  private static fromParts(text: string, sep: number, strict: boolean): Cidr | undefined {
    const value = dottedQuadValue(text, 0, sep);
    const prefix = prefixLengthValue(text, sep + 1, text.length);
    if (value < 0 || prefix < 0) return undefined;
    const masked = (value & maskOf(prefix)) >>> 0;
    if (strict && masked !== value) return undefined;
    return new Cidr(Ipv4.fromNumber(masked), prefix);
  }

  static of(network: Ipv4, prefix: number): Cidr {
    return new Cidr(Ipv4.fromNumber(network.value & maskOf(prefix)), prefix);
  }

  get family(): 4 {
    return 4;
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

  contains(other: IpNet | IpAddr): boolean {
    if (other.family !== 4) return false;
    if (other instanceof Ipv4) return other.value >= this.first && other.value <= this.last;
    return other.first >= this.first && other.last <= this.last;
  }

  overlaps(other: IpNet): boolean {
    return other.family === 4 && this.first <= other.last && other.first <= this.last;
  }

  equals(other: IpNet): boolean {
    return other.family === 4 && this.prefix === other.prefix && this.network.value === other.network.value;
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
    // Every listed lease's key: split where the pattern "^([0-9.]+)-(\d{1,2})$" would, without
    // building the "a.b.c.d/n" text again (test/unit/cidr4-text checks the two agree).
    const dash = key.indexOf('-');
    return dash < 0 ? undefined : Cidr.fromParts(key, dash, true);
  }
}

const HEX_COLON = /^[0-9A-Fa-f:]{2,39}$/;
const ALL_ONES_128 = (1n << 128n) - 1n;

/**
 * Canonical texts computed so far: keys and batch lines ask for the same address's text
 * several times. Kept outside the objects so that two equal addresses stay structurally equal.
 */
const IPV6_TEXT = new WeakMap<Ipv6, string>();

export class Ipv6 {
  private constructor(readonly value: bigint) {}

  get family(): 6 {
    return 6;
  }

  /**
   * Parses an IPv6 address in hex-colon form ("fd00:5:0:34::", any case, compressed or not).
   * Zones, prefixes and embedded dotted quads are refused: none belongs in a lease, and each
   * would be one more form to keep out of an `ip -batch` line. Thousands run per kernel dump
   * or lease listing, so the hex-colon grammar is read here directly (test/unit/cidr6-text
   * checks it against ip-address); parseChecked asks ip-address as well.
   */
  static parse(text: unknown): Ipv6 | undefined {
    if (typeof text !== 'string' || !HEX_COLON.test(text)) return undefined;
    const value = hexColonValue(text);
    return value === undefined ? undefined : new Ipv6(value);
  }

  /** The same, with ip-address's opinion too: for user input, where it costs nothing. */
  static parseChecked(text: unknown): Ipv6 | undefined {
    const fast = Ipv6.parse(text);
    if (!fast || !Address6.isValid(text as string)) return undefined;
    return new Address6(text as string).bigInt() === fast.value ? fast : undefined;
  }

  static fromBigInt(value: bigint): Ipv6 {
    return new Ipv6(BigInt.asUintN(128, value));
  }

  add(n: bigint | number): Ipv6 {
    return Ipv6.fromBigInt(this.value + BigInt(n));
  }

  equals(other: IpAddr): boolean {
    return other.family === 6 && this.value === other.value;
  }

  /** RFC 5952 canonical text: lowercase, leading zeros dropped, the longest zero run as "::". */
  toString(): string {
    let text = IPV6_TEXT.get(this);
    if (text === undefined) {
      text = canonical6(this.value);
      IPV6_TEXT.set(this, text);
    }
    return text;
  }
}

const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;

/**
 * The value of "x:x:x:x:x:x:x:x" with at most one "::" standing for one or more zero groups
 * (RFC 4291 2.2, without the dotted-quad form), or undefined.
 */
function hexColonValue(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const tail = halves.length === 1 || halves[1] === '' ? [] : halves[1]!.split(':');
  const count = head.length + tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  let hex = '';
  for (const g of head) {
    if (!HEX_GROUP.test(g)) return undefined;
    hex += g.padStart(4, '0');
  }
  hex += '0000'.repeat(8 - count);
  for (const g of tail) {
    if (!HEX_GROUP.test(g)) return undefined;
    hex += g.padStart(4, '0');
  }
  return BigInt(`0x${hex}`);
}

/** RFC 5952 section 4: lowercase, no leading zeros, the first longest run of two or more zero groups as "::". */
function canonical6(value: bigint): string {
  const hex = value.toString(16).padStart(32, '0');
  const groups: string[] = [];
  for (let i = 0; i < 32; i += 4) groups.push(Number.parseInt(hex.slice(i, i + 4), 16).toString(16));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * The IPv6 twin of Cidr: the same operations over bigints (128-bit addresses), where Cidr stays
 * in 32-bit numbers for speed; the two share the IpNet interface the rest of weft uses.
 */
export class Cidr6 {
  private constructor(
    readonly network: Ipv6,
    readonly prefix: number,
  ) {}

  /** Parses "fd00:5::/48"; `strict` refuses host bits, as for IPv4. */
  static parse(text: unknown, opts: { strict?: boolean } = {}): Cidr6 | undefined {
    if (typeof text !== 'string') return undefined;
    const m = /^([0-9A-Fa-f:]+)\/(\d{1,3})$/.exec(text);
    if (!m) return undefined;
    const ip = Ipv6.parse(m[1]);
    const prefix = Number(m[2]);
    if (!ip || prefix > 128 || String(prefix) !== m[2]) return undefined;
    const masked = ip.value & mask6Of(prefix);
    if (opts.strict && masked !== ip.value) return undefined;
    return new Cidr6(Ipv6.fromBigInt(masked), prefix);
  }

  static of(network: Ipv6, prefix: number): Cidr6 {
    return new Cidr6(Ipv6.fromBigInt(network.value & mask6Of(prefix)), prefix);
  }

  get family(): 6 {
    return 6;
  }

  /** Number of addresses in the block. */
  get size(): bigint {
    return 1n << BigInt(128 - this.prefix);
  }

  get first(): bigint {
    return this.network.value;
  }

  get last(): bigint {
    return this.network.value + this.size - 1n;
  }

  contains(other: IpNet | IpAddr): boolean {
    if (other.family !== 6) return false;
    if (other instanceof Ipv6) return other.value >= this.first && other.value <= this.last;
    return other.first >= this.first && other.last <= this.last;
  }

  overlaps(other: IpNet): boolean {
    return other.family === 6 && this.first <= other.last && other.first <= this.last;
  }

  equals(other: IpNet): boolean {
    return other.family === 6 && this.prefix === other.prefix && this.network.value === other.network.value;
  }

  alignedTo(prefix: number): boolean {
    return (this.network.value & mask6Of(prefix)) === this.network.value;
  }

  /** The first address after the network address, FLANNEL_IPV6_SUBNET's address. */
  get gateway(): Ipv6 {
    return this.network.add(1n);
  }

  toString(): string {
    return `${this.network.toString()}/${this.prefix}`;
  }

  /** The IPv6 half of a Flannel lease key: "fd00:5:0:34::-64" (canonical form). */
  toKey(): string {
    return `${this.network.toString()}-${this.prefix}`;
  }

  /** Parses a key half; only the canonical form is accepted, so one subnet has one key. */
  static fromKey(key: string): Cidr6 | undefined {
    const m = /^([0-9a-f:]+)-(\d{1,3})$/.exec(key);
    if (!m) return undefined;
    const net = Cidr6.parse(`${m[1]}/${m[2]}`, { strict: true });
    return net && net.network.toString() === m[1] ? net : undefined;
  }
}

export type IpAddr = Ipv4 | Ipv6;
export type IpNet = Cidr | Cidr6;

/** An address of either family, or undefined. */
export function parseIp(text: unknown): IpAddr | undefined {
  return Ipv4.parse(text) ?? Ipv6.parse(text);
}

/** A block of either family ("10.5.0.0/16", "fd00:5::/48"), or undefined. */
export function parseNet(text: unknown, opts: { strict?: boolean } = {}): IpNet | undefined {
  return Cidr.parse(text, opts) ?? Cidr6.parse(text, opts);
}

/** A block of the address's family: the connected subnet of an interface address. */
export function netOf(address: IpAddr, prefix: number): IpNet {
  return address.family === 4 ? Cidr.of(address, prefix) : Cidr6.of(address, prefix);
}

function mask6Of(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL_ONES_128 << BigInt(128 - prefix)) & ALL_ONES_128;
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
