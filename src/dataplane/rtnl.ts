// rtnetlink messages as bytes, and back. Pure: no socket, no I/O.
//
// Only what weft programs and reads is here: unicast routes in the main table, permanent
// neighbours, vxlan FDB entries (AF_BRIDGE neighbours with NTF_SELF), links and addresses.
// Messages are built from typed values (Ipv4/Ipv6, Mac, interface indexes) and several can
// share one datagram, which the kernel processes in order, answering each with its own ACK
// or errno (see netlink.ts). Decoding validates lengths and never trusts a count from the
// kernel beyond the buffer it came in.
import { Cidr, Cidr6, Ipv4, Ipv6, type IpAddr, type IpNet } from '../alloc/cidr.js';
import { toFdbMac, toMac, type Family, type Mac } from './model.js';

// Message types (linux/rtnetlink.h, linux/netlink.h).
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

export const RT_TABLE_MAIN = 254;
export const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_NOWHERE = 255;
export const RTN_UNICAST = 1;
export const RTNH_F_ONLINK = 4;

// Attribute types, one table per kind of message (linux/rtnetlink.h, neighbour.h, if_link.h,
// if_addr.h): RTA.DST is the kernel's RTA_DST. Only the attributes weft writes or reads.
const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
const NDA = { DST: 1, LLADDR: 2, PORT: 6, VNI: 7, IFINDEX: 8, MASTER: 9, SRC_VNI: 11 } as const;
/** IFALIAS is the device's alias (weft's owner mark, weft:<network>). */
const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINKINFO: 18, IFALIAS: 20 } as const;
const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const IFLA_VXLAN = { ID: 1, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, LOCAL6: 17, GBP: 23 } as const;
const IFA = { ADDRESS: 1, LOCAL: 2, FLAGS: 8 } as const;

export const NUD_PERMANENT = 0x80;
const NUD_NOARP = 0x40;
export const NTF_SELF = 0x02;
const NLA_F_NESTED = 0x8000;
export const IFF_UP = 0x1;
const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;

const HDR = 16;

// ---- encoding ----

/**
 * One message body being written: the fixed part, then attributes in kernel layout (4-byte
 * aligned), into a scratch buffer; finish() copies it out. One allocation per message: a
 * full sync encodes tens of thousands. Written through a DataView and typed-array methods
 * rather than Buffer's write/fill/from methods: a lease event encodes three messages, and
 * V8's optimizing compiles of those Buffer methods (inlined into each caller) cost the agent
 * more CPU over its first few hundred events than the encoding itself (docs/performance.md).
 */
class Body {
  private static readonly scratch = Buffer.alloc(1024);
  private static readonly bytes = new Uint8Array(Body.scratch.buffer, Body.scratch.byteOffset, Body.scratch.length);
  private static readonly view = new DataView(Body.scratch.buffer, Body.scratch.byteOffset, Body.scratch.length);
  private readonly b = Body.bytes;
  private readonly v = Body.view;
  private off = 0;
  private readonly nests: number[] = [];

  constructor(fixed: number) {
    this.b.fill(0, 0, fixed);
    this.off = fixed;
  }

  u8At(at: number, v: number): this {
    this.b[at] = v & 0xff;
    return this;
  }

  u16At(at: number, v: number): this {
    this.v.setUint16(at, v, true);
    return this;
  }

  u32At(at: number, v: number): this {
    this.v.setUint32(at, v >>> 0, true);
    return this;
  }

  i32At(at: number, v: number): this {
    this.v.setInt32(at, v, true);
    return this;
  }

  private header(type: number, dataLen: number): number {
    const at = this.off;
    this.v.setUint16(at, 4 + dataLen, true);
    this.v.setUint16(at + 2, type, true);
    this.off += 4;
    return at;
  }

  private pad(): void {
    while (this.off & 3) this.b[this.off++] = 0;
  }

  u32(type: number, v: number): this {
    this.header(type, 4);
    this.v.setUint32(this.off, v >>> 0, true);
    this.off += 4;
    return this;
  }

  u8(type: number, v: number): this {
    this.header(type, 1);
    this.b[this.off++] = v & 0xff;
    this.pad();
    return this;
  }

  be16(type: number, v: number): this {
    this.header(type, 2);
    this.v.setUint16(this.off, v, false);
    this.off += 2;
    this.pad();
    return this;
  }

  flag(type: number): this {
    this.header(type, 0);
    return this;
  }

  str(type: number, s: string): this {
    this.header(type, s.length + 1);
    this.off += Body.scratch.write(s, this.off, 'latin1');
    this.b[this.off++] = 0;
    this.pad();
    return this;
  }

  /** A string without the NUL terminator (as iproute2 sends an alias). */
  text(type: number, s: string): this {
    this.header(type, s.length);
    this.off += Body.scratch.write(s, this.off, 'latin1');
    this.pad();
    return this;
  }

  addr(type: number, ip: IpAddr): this {
    if (ip.family === 4) {
      this.header(type, 4);
      this.v.setUint32(this.off, ip.value, false);
      this.off += 4;
    } else {
      this.header(type, 16);
      this.v.setBigUint64(this.off, ip.value >> 64n, false);
      this.v.setBigUint64(this.off + 8, ip.value & 0xffffffffffffffffn, false);
      this.off += 16;
    }
    return this;
  }

  mac(type: number, mac: Mac): this {
    this.header(type, 6);
    for (let i = 0; i < 6; i++) this.b[this.off++] = parseInt(mac.slice(i * 3, i * 3 + 2), 16);
    this.pad();
    return this;
  }

  open(type: number): this {
    this.nests.push(this.header(type | NLA_F_NESTED, 0));
    return this;
  }

  close(): this {
    const at = this.nests.pop()!;
    this.v.setUint16(at, this.off - at, true);
    return this;
  }

  finish(type: number, flags: number): Request {
    // A slice of Buffer's shared 8 KB pool, not an ArrayBuffer of its own: each ArrayBuffer
    // costs four small C allocations (data, backing store, its extension, a shared_ptr),
    // and the 15,000 bodies of a full sync outlived the first pass until a full collection,
    // scattered over glibc's heap, which then could not give the pages back (~3 MB of an
    // idle agent's RSS at 5,000 peers; docs/performance.md, the idle RSS's third pass).
    const body = Buffer.allocUnsafe(this.off);
    body.set(this.b.subarray(0, this.off)); // typed-array builtins, as above
    return { type, flags: flags | NLM_F_REQUEST | NLM_F_ACK, body };
  }
}

/** One netlink message: header (seq filled in by the sender), fixed part, attributes. */
export interface Request {
  type: number;
  flags: number;
  body: Buffer;
}

/**
 * The wire form of requests, one after another in one buffer, with consecutive sequence
 * numbers from `seq`. `ackOnlyLast` clears NLM_F_ACK on all but the last (see
 * NetlinkSocket.transact). Plain typed-array writes: this runs once per lease event, and
 * Buffer's own write and copy methods made V8's optimizing compile of it cost more CPU than
 * the calls it served (docs/performance.md).
 */
export function frame(reqs: readonly Request[], seq: number, pid = 0, ackOnlyLast = false): Buffer {
  let total = 0;
  for (let i = 0; i < reqs.length; i++) total += HDR + ((reqs[i]!.body.length + 3) & ~3);
  const out = new Uint8Array(total); // zeroed: the padding stays 0
  const view = new DataView(out.buffer);
  let off = 0;
  for (let i = 0; i < reqs.length; i++) {
    const r = reqs[i]!;
    const flags = ackOnlyLast && i < reqs.length - 1 ? r.flags & ~NLM_F_ACK : r.flags;
    view.setUint32(off, HDR + r.body.length, true);
    view.setUint16(off + 4, r.type, true);
    view.setUint16(off + 6, flags, true);
    view.setUint32(off + 8, (seq + i) >>> 0, true);
    view.setUint32(off + 12, pid, true);
    out.set(r.body, off + HDR);
    off += HDR + ((r.body.length + 3) & ~3);
  }
  return Buffer.from(out.buffer, 0, total);
}

function afOf(family: Family): number {
  return family === 6 ? AF_INET6 : AF_INET;
}

function rtmsg(b: Body, family: number, dstLen: number, table: number, protocol: number, scope: number, type: number, flags: number): Body {
  return b.u8At(0, family).u8At(1, dstLen).u8At(4, table).u8At(5, protocol).u8At(6, scope).u8At(7, type).u32At(8, flags);
}

export interface RouteSpec {
  dst: IpNet;
  via: IpAddr | undefined;
  oif: number;
  onlink: boolean;
  proto: number | undefined;
  metric: number;
}

/** `ip route replace DST via GW dev DEV [onlink] proto P [metric M]` in the main table. */
export function routeReplace(r: RouteSpec): Request {
  const b = rtmsg(new Body(12), afOf(r.dst.family), r.dst.prefix, RT_TABLE_MAIN, r.proto ?? 3, RT_SCOPE_UNIVERSE, RTN_UNICAST, r.onlink ? RTNH_F_ONLINK : 0);
  b.addr(RTA.DST, r.dst.network).u32(RTA.OIF, r.oif);
  if (r.via) b.addr(RTA.GATEWAY, r.via);
  if (r.metric !== 0) b.u32(RTA.PRIORITY, r.metric);
  return b.finish(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
}

/** `ip route del DST dev DEV [proto P] [metric M]`: matches any scope, as iproute2 does. */
export function routeDel(r: RouteSpec): Request {
  const b = rtmsg(new Body(12), afOf(r.dst.family), r.dst.prefix, RT_TABLE_MAIN, r.proto ?? 0, RT_SCOPE_NOWHERE, 0, 0);
  b.addr(RTA.DST, r.dst.network).u32(RTA.OIF, r.oif);
  if (r.metric !== 0) b.u32(RTA.PRIORITY, r.metric);
  return b.finish(RTM_DELROUTE, 0);
}

function ndmsg(family: number, ifindex: number, state: number, flags: number): Body {
  return new Body(12).u8At(0, family).i32At(4, ifindex).u16At(8, state).u8At(10, flags);
}

/** `ip neigh replace IP lladdr MAC dev DEV nud permanent`. */
export function neighReplace(ip: IpAddr, mac: Mac, ifindex: number): Request {
  return ndmsg(afOf(ip.family), ifindex, NUD_PERMANENT, 0).addr(NDA.DST, ip).mac(NDA.LLADDR, mac).finish(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
}

/** `ip neigh del IP dev DEV`. */
export function neighDel(ip: IpAddr, ifindex: number): Request {
  return ndmsg(afOf(ip.family), ifindex, 0, 0).addr(NDA.DST, ip).finish(RTM_DELNEIGH, 0);
}

/** `bridge fdb replace MAC dev DEV dst IP self permanent`. */
export function fdbReplace(mac: Mac, dst: IpAddr, ifindex: number): Request {
  return ndmsg(AF_BRIDGE, ifindex, NUD_PERMANENT, NTF_SELF).mac(NDA.LLADDR, mac).addr(NDA.DST, dst).finish(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE);
}

/** `bridge fdb del MAC dev DEV dst IP self`. */
export function fdbDel(mac: Mac, dst: IpAddr, ifindex: number): Request {
  return ndmsg(AF_BRIDGE, ifindex, NUD_NOARP, NTF_SELF).mac(NDA.LLADDR, mac).addr(NDA.DST, dst).finish(RTM_DELNEIGH, 0);
}

function ifinfomsg(index: number, flags: number, change: number): Body {
  return new Body(16).i32At(4, index).u32At(8, flags).u32At(12, change);
}

/** RTM_GETLINK for one name (answered with one RTM_NEWLINK, or ENODEV). */
export function linkGet(name: string): Request {
  return ifinfomsg(0, 0, 0).str(IFLA.IFNAME, name).finish(RTM_GETLINK, 0);
}

/** RTM_GETLINK for one interface index. */
export function linkGetIndex(index: number): Request {
  return ifinfomsg(index, 0, 0).finish(RTM_GETLINK, 0);
}

export interface VxlanSpec {
  name: string;
  vni: number;
  local: IpAddr;
  linkIndex: number;
  port: number;
  gbp: boolean;
  mtu: number;
}

/** `ip link add NAME type vxlan id VNI local IP dev UPLINK nolearning dstport PORT [gbp]`, with its MTU, up. */
export function vxlanCreate(v: VxlanSpec): Request {
  const b = ifinfomsg(0, IFF_UP, IFF_UP).str(IFLA.IFNAME, v.name).u32(IFLA.MTU, v.mtu);
  b.open(IFLA.LINKINFO).str(IFLA_INFO.KIND, 'vxlan').open(IFLA_INFO.DATA);
  b.u32(IFLA_VXLAN.ID, v.vni).u32(IFLA_VXLAN.LINK, v.linkIndex).addr(v.local.family === 6 ? IFLA_VXLAN.LOCAL6 : IFLA_VXLAN.LOCAL, v.local);
  b.u8(IFLA_VXLAN.LEARNING, 0).be16(IFLA_VXLAN.PORT, v.port);
  if (v.gbp) b.flag(IFLA_VXLAN.GBP);
  return b.close().close().finish(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
}

/** `ip link set DEV mtu M up`. */
export function linkSetMtuUp(index: number, mtu: number): Request {
  return ifinfomsg(index, IFF_UP, IFF_UP).u32(IFLA.MTU, mtu).finish(RTM_NEWLINK, 0);
}

/** `ip link set dev DEV alias ALIAS`. */
export function linkSetAlias(index: number, alias: string): Request {
  return ifinfomsg(index, 0, 0).text(IFLA.IFALIAS, alias).finish(RTM_NEWLINK, 0);
}

/** `ip link del DEV`. */
export function linkDel(index: number): Request {
  return ifinfomsg(index, 0, 0).finish(RTM_DELLINK, 0);
}

function ifaddrmsg(family: number, prefix: number, index: number): Body {
  return new Body(8).u8At(0, family).u8At(1, prefix).u32At(4, index);
}

/** `ip addr replace IP/PREFIX dev DEV [nodad]`. */
export function addrReplace(ip: IpAddr, prefix: number, index: number, nodad: boolean): Request {
  const b = ifaddrmsg(afOf(ip.family), prefix, index).addr(IFA.LOCAL, ip).addr(IFA.ADDRESS, ip);
  if (nodad) b.u32(IFA.FLAGS, IFA_F_NODAD);
  return b.finish(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
}

/** `ip addr del IP/PREFIX dev DEV`. */
export function addrDel(ip: IpAddr, prefix: number, index: number): Request {
  return ifaddrmsg(afOf(ip.family), prefix, index).addr(IFA.LOCAL, ip).finish(RTM_DELADDR, 0);
}

/** A dump request: every route, neighbour (AF_INET/AF_INET6), FDB entry (AF_BRIDGE), link or address of a family. */
export function dump(type: typeof RTM_GETROUTE | typeof RTM_GETNEIGH | typeof RTM_GETLINK | typeof RTM_GETADDR, family: number): Request {
  const b =
    type === RTM_GETROUTE ? rtmsg(new Body(12), family, 0, 0, 0, 0, 0, 0)
    : type === RTM_GETNEIGH ? ndmsg(family, 0, 0, 0)
    : type === RTM_GETLINK ? ifinfomsg(0, 0, 0)
    : ifaddrmsg(family, 0, 0);
  const r = b.finish(type, 0);
  return { ...r, flags: NLM_F_REQUEST | NLM_F_DUMP };
}

/**
 * `ip route get IP`: the kernel's route lookup for one destination, answered with one
 * RTM_NEWROUTE (its device and preferred source) or an errno (no route). Without NLM_F_ACK,
 * as iproute2 asks: nothing follows the answer.
 */
export function routeGet(ip: IpAddr): Request {
  const r = rtmsg(new Body(12), afOf(ip.family), ip.family === 6 ? 128 : 32, 0, 0, 0, 0, 0).addr(RTA.DST, ip).finish(RTM_GETROUTE, 0);
  return { ...r, flags: NLM_F_REQUEST };
}

// ---- decoding ----

export interface Message {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after the header (a view into the received buffer). */
  body: Buffer;
}

/** The messages of one datagram; a malformed tail is dropped (counted in `malformed`). */
export function parseMessages(buf: Buffer): { messages: Message[]; malformed: boolean } {
  const messages: Message[] = [];
  const malformed = eachMessage(buf, (m) => void messages.push(m));
  return { messages, malformed };
}

/**
 * The same, each message handed to `fn` as it is cut out, none kept: a dump's datagram holds
 * hundreds, and a collection in the middle of them then copies only the one being handled
 * (the periodic resync's garbage stays young). True when a malformed tail was dropped.
 */
export function eachMessage(buf: Buffer, fn: (m: Message) => void): boolean {
  let off = 0;
  while (off + HDR <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < HDR || off + len > buf.length) return true;
    fn({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      body: buf.subarray(off + HDR, off + len),
    });
    off += (len + 3) & ~3;
  }
  return off < buf.length && buf.length - off >= HDR;
}

/** The errno of an NLMSG_ERROR message, as a positive number (0 = ACK). */
export function errnoOf(m: Message): number {
  if (m.body.length < 4) return 71; // EPROTO
  const e = m.body.readInt32LE(0);
  return e === 0 ? 0 : -e;
}

/** The sequence number of the request an NLMSG_ERROR answers (the echoed header's). */
export function ackedSeq(m: Message): number | undefined {
  return m.body.length >= 4 + HDR ? m.body.readUInt32LE(4 + 8) : undefined;
}

/** A message's attributes by type (the types weft reads are all below 32; others are skipped). */
class Attrs {
  private readonly at: (Buffer | undefined)[] = new Array<Buffer | undefined>(32);

  constructor(buf: Buffer, from: number) {
    let off = from;
    while (off + 4 <= buf.length) {
      const len = buf.readUInt16LE(off);
      const type = buf.readUInt16LE(off + 2) & 0x3fff;
      if (len < 4 || off + len > buf.length) break;
      if (type < 32) this.at[type] = buf.subarray(off + 4, off + len);
      off += (len + 3) & ~3;
    }
  }

  get(type: number): Buffer | undefined {
    return this.at[type];
  }

  has(type: number): boolean {
    return this.at[type] !== undefined;
  }
}

/**
 * The attributes of the message being decoded, as offsets into its buffer: the route and
 * neighbour decoders read thousands of messages per dump (every periodic resync), and a
 * Buffer view per attribute was most of their cost and garbage. One instance, reused: the
 * decoders are synchronous and never nest.
 */
class AttrScan {
  private readonly off = new Int32Array(32);
  private readonly len = new Int32Array(32);
  private buf: Buffer = Buffer.alloc(0);

  scan(buf: Buffer, from: number): this {
    this.off.fill(-1);
    this.buf = buf;
    let off = from;
    while (off + 4 <= buf.length) {
      const len = buf.readUInt16LE(off);
      const type = buf.readUInt16LE(off + 2) & 0x3fff;
      if (len < 4 || off + len > buf.length) break;
      if (type < 32) {
        this.off[type] = off + 4;
        this.len[type] = len - 4;
      }
      off += (len + 3) & ~3;
    }
    return this;
  }

  has(type: number): boolean {
    return this.off[type]! >= 0;
  }

  u32(type: number): number | undefined {
    const o = this.off[type]!;
    return o >= 0 && this.len[type]! >= 4 ? this.buf.readUInt32LE(o) : undefined;
  }

  /** An address of the family (by its length when `family` is undefined: FDB remotes carry none). */
  addr(type: number, family?: number): IpAddr | undefined {
    const o = this.off[type]!;
    if (o < 0) return undefined;
    const n = this.len[type]!;
    const af = family ?? (n === 16 ? AF_INET6 : AF_INET);
    if (af === AF_INET && n === 4) return Ipv4.fromNumber(this.buf.readUInt32BE(o));
    if (af === AF_INET6 && n === 16) return Ipv6.fromBigInt((this.buf.readBigUInt64BE(o) << 64n) | this.buf.readBigUInt64BE(o + 8));
    return undefined;
  }

  mac(type: number): string | undefined {
    const o = this.off[type]!;
    if (o < 0 || this.len[type] !== 6) return undefined;
    const b = this.buf;
    return `${HEX[b[o]!]}:${HEX[b[o + 1]!]}:${HEX[b[o + 2]!]}:${HEX[b[o + 3]!]}:${HEX[b[o + 4]!]}:${HEX[b[o + 5]!]}`;
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const hot = new AttrScan();

function attrs(buf: Buffer, from: number): Attrs {
  return new Attrs(buf, from);
}

function addrOf(b: Buffer | undefined, family: number): IpAddr | undefined {
  if (!b) return undefined;
  if (family === AF_INET && b.length === 4) return Ipv4.fromNumber(b.readUInt32BE(0));
  if (family === AF_INET6 && b.length === 16) return Ipv6.fromBigInt((b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8));
  return undefined;
}

function u32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

function macOf(b: Buffer | undefined): string | undefined {
  if (!b || b.length !== 6) return undefined;
  const h = b.toString('hex');
  return `${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}:${h.slice(10, 12)}`;
}

export function familyNumber(family: Family): number {
  return afOf(family);
}

/**
 * The family and attributes of an AF_INET or AF_INET6 message body whose fixed part is
 * fixedLength bytes (attributes follow it); undefined for other families or a short body.
 */
function ipMessage(body: Buffer, fixedLength: number): { af: number; family: Family; a: Attrs } | undefined {
  if (body.length < fixedLength) return undefined;
  const af = body.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  return { af, family: af === AF_INET6 ? 6 : 4, a: attrs(body, fixedLength) };
}

export interface RouteMsg {
  family: Family;
  dst: IpNet;
  via: IpAddr | undefined;
  oif: number | undefined;
  table: number;
  proto: number;
  type: number;
  onlink: boolean;
  metric: number;
  /** RTA_PREFSRC: the source address the kernel picks (a route lookup's answer has it). */
  prefsrc: IpAddr | undefined;
}

/** An RTM_NEWROUTE/RTM_DELROUTE body; undefined for other families or malformed ones. */
export function decodeRoute(body: Buffer): RouteMsg | undefined {
  if (body.length < 12) return undefined;
  const af = body.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return undefined;
  const family: Family = af === AF_INET6 ? 6 : 4;
  const dstLen = body.readUInt8(1);
  const a = hot.scan(body, 12);
  if (!a.has(RTA.DST) && dstLen !== 0) return undefined; // only a default route has no destination
  const dstIp = a.has(RTA.DST) ? a.addr(RTA.DST, af) : family === 6 ? Ipv6.fromBigInt(0n) : Ipv4.fromNumber(0);
  if (!dstIp) return undefined;
  const dst = family === 6 ? Cidr6.of(dstIp as Ipv6, dstLen) : Cidr.of(dstIp as Ipv4, dstLen);
  if (!dst) return undefined;
  const via = a.has(RTA.GATEWAY) ? a.addr(RTA.GATEWAY, af) : undefined;
  if (a.has(RTA.GATEWAY) && !via) return undefined;
  return {
    family,
    dst,
    via,
    oif: a.u32(RTA.OIF),
    table: a.u32(RTA.TABLE) ?? body.readUInt8(4),
    proto: body.readUInt8(5),
    type: body.readUInt8(7),
    onlink: (body.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
    metric: a.u32(RTA.PRIORITY) ?? 0,
    prefsrc: a.has(RTA.PREFSRC) ? a.addr(RTA.PREFSRC, af) : undefined,
  };
}

export interface NeighMsg {
  /** AF_INET/AF_INET6 neighbours carry a family; AF_BRIDGE ones are FDB entries. */
  kind: 'neigh' | 'fdb';
  ifindex: number;
  state: number;
  flags: number;
  /** Neighbour: its IP. FDB: the remote (dst). */
  ip: IpAddr | undefined;
  mac: Mac | undefined;
  /** FDB: the entry belongs to a bridge the device is a port of (NDA_MASTER). */
  master: boolean;
  /** FDB: no per-entry VNI, port or via (what weft sets). */
  plain: boolean;
}

export function decodeNeigh(body: Buffer): NeighMsg | undefined {
  if (body.length < 12) return undefined;
  const af = body.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6 && af !== AF_BRIDGE) return undefined;
  const a = hot.scan(body, 12);
  const ifindex = body.readInt32LE(4);
  const state = body.readUInt16LE(8);
  const flags = body.readUInt8(10);
  if (af === AF_BRIDGE) {
    return {
      kind: 'fdb',
      ifindex,
      state,
      flags,
      ip: a.addr(NDA.DST),
      mac: toFdbMac(a.mac(NDA.LLADDR)),
      master: a.has(NDA.MASTER),
      plain: !a.has(NDA.VNI) && !a.has(NDA.PORT) && !a.has(NDA.IFINDEX) && !a.has(NDA.SRC_VNI),
    };
  }
  return { kind: 'neigh', ifindex, state, flags, ip: a.addr(NDA.DST, af), mac: toMac(a.mac(NDA.LLADDR)), master: false, plain: true };
}

export interface LinkMsg {
  index: number;
  name: string | undefined;
  flags: number;
  mtu: number | undefined;
  mac: string | undefined;
  kind: string | undefined;
  /** IFLA_IFALIAS, when set. */
  alias: string | undefined;
  vxlan: { vni?: number; link?: number; local?: IpAddr; port?: number; learning?: boolean; gbp: boolean } | undefined;
}

function cstr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString('latin1');
}

export function decodeLink(body: Buffer): LinkMsg | undefined {
  if (body.length < 16) return undefined;
  const a = attrs(body, 16);
  let kind: string | undefined;
  let vxlan: LinkMsg['vxlan'];
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const i = attrs(info, 0);
    kind = cstr(i.get(IFLA_INFO.KIND));
    const data = i.get(IFLA_INFO.DATA);
    if (kind === 'vxlan' && data) {
      const d = attrs(data, 0);
      const port = d.get(IFLA_VXLAN.PORT);
      const learning = d.get(IFLA_VXLAN.LEARNING);
      vxlan = {
        vni: u32(d.get(IFLA_VXLAN.ID)),
        link: u32(d.get(IFLA_VXLAN.LINK)),
        local: addrOf(d.get(IFLA_VXLAN.LOCAL), AF_INET) ?? addrOf(d.get(IFLA_VXLAN.LOCAL6), AF_INET6),
        port: port && port.length >= 2 ? port.readUInt16BE(0) : undefined,
        learning: learning && learning.length >= 1 ? learning.readUInt8(0) !== 0 : undefined,
        gbp: d.has(IFLA_VXLAN.GBP),
      };
    }
  }
  return {
    index: body.readInt32LE(4),
    name: cstr(a.get(IFLA.IFNAME)),
    flags: body.readUInt32LE(8),
    mtu: u32(a.get(IFLA.MTU)),
    mac: macOf(a.get(IFLA.ADDRESS)),
    kind,
    alias: cstr(a.get(IFLA.IFALIAS)),
    vxlan,
  };
}

export interface AddrMsg {
  family: Family;
  index: number;
  prefix: number;
  ip: IpAddr;
  /** ifa_scope: RT_SCOPE_UNIVERSE (iproute2's "global"), link (253), host (254). */
  scope: number;
  /** IFA_F_* (IFA_FLAGS when present: it holds the flags that do not fit ifa_flags' byte). */
  flags: number;
}

export function decodeAddr(body: Buffer): AddrMsg | undefined {
  const msg = ipMessage(body, 8);
  const ip = msg && addrOf(msg.a.get(IFA.LOCAL) ?? msg.a.get(IFA.ADDRESS), msg.af);
  const flags = msg && (u32(msg.a.get(IFA.FLAGS)) ?? body.readUInt8(2));
  return ip && { family: msg.family, prefix: body.readUInt8(1), index: body.readUInt32LE(4), ip, scope: body.readUInt8(3), flags: flags ?? 0 };
}

