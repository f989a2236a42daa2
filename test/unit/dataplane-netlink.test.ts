// The netlink channel's pure parts: message encoding and decoding (rtnl.ts), the request
// socket's bookkeeping against a scripted fake kernel (netlink.ts), and how notifications are
// judged as drift (drift.ts).
import { describe, expect, it, vi } from 'vitest';
import { NetlinkChannel, ownChange, type KernelEvent } from '../../src/dataplane/channel.js';
import { DriftGuard, judgeKernelEvent } from '../../src/dataplane/drift.js';
import { emptyState, toLinkName, toMac, WEFT_ROUTE_PROTO, type LinkName, type Mac, type RouteEntry } from '../../src/dataplane/model.js';
import { ENOBUFS, ETIMEDOUT, NetlinkSocket } from '../../src/dataplane/netlink.js';
import * as rtnl from '../../src/dataplane/rtnl.js';
import { createLogger } from '../../src/log.js';
import { cidr, ip, ip6, net6 } from '../helpers/peers.js';

const fl = toLinkName('flannel.1') as LinkName;
const eth = toLinkName('eth0') as LinkName;
const mac = (s: string) => toMac(s) as Mac;

/** One message through the wire format and back. */
function roundTrip(req: rtnl.Request): rtnl.Message {
  const { messages, malformed } = rtnl.parseMessages(rtnl.frame([req], 7));
  expect(malformed).toBe(false);
  expect(messages).toHaveLength(1);
  expect(messages[0]!.seq).toBe(7);
  return messages[0]!;
}

describe('rtnetlink messages', () => {
  it('encodes an onlink IPv4 route replace as iproute2 does, and decodes it back', () => {
    const m = roundTrip(rtnl.routeReplace({ dst: cidr('10.5.3.0/24'), via: ip('10.5.3.0'), oif: 9, onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0 }));
    expect(m.type).toBe(rtnl.RTM_NEWROUTE);
    expect(m.flags).toBe(rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE);
    // rtmsg: AF_INET, /24, main table, proto 119, universe scope, unicast, RTNH_F_ONLINK.
    expect([...m.body.subarray(0, 12)]).toEqual([2, 24, 0, 0, 254, 119, 0, 1, 4, 0, 0, 0]);
    expect(rtnl.decodeRoute(m.body)).toEqual({
      family: 4, dst: cidr('10.5.3.0/24'), via: ip('10.5.3.0'), oif: 9, table: 254, proto: 119, type: 1, onlink: true, metric: 0,
    });
  });

  it('encodes IPv6 routes with their metric, and deletes that match any scope', () => {
    const spec = { dst: net6('fd00:5:0:3::/64'), via: ip6('fd00:5:0:3::'), oif: 4, onlink: true, proto: 119, metric: 1024 };
    expect(rtnl.decodeRoute(roundTrip(rtnl.routeReplace(spec)).body)).toMatchObject({ family: 6, dst: spec.dst, via: spec.via, metric: 1024, onlink: true });
    const del = roundTrip(rtnl.routeDel(spec));
    expect(del.type).toBe(rtnl.RTM_DELROUTE);
    expect(del.body[6]).toBe(255); // RT_SCOPE_NOWHERE
    expect(rtnl.decodeRoute(del.body)).toMatchObject({ dst: spec.dst, via: undefined, oif: 4, metric: 1024 });
  });

  it('encodes permanent neighbours and self FDB entries (AF_BRIDGE), and decodes both', () => {
    const n = roundTrip(rtnl.neighReplace(ip('10.5.3.0'), mac('02:00:00:00:00:03'), 9));
    expect(rtnl.decodeNeigh(n.body)).toEqual({
      kind: 'neigh', ifindex: 9, state: rtnl.NUD_PERMANENT, flags: 0, ip: ip('10.5.3.0'), mac: '02:00:00:00:00:03', master: false, plain: true,
    });
    const f = roundTrip(rtnl.fdbReplace(mac('02:00:00:00:00:03'), ip6('fd00:1::3'), 9));
    expect(f.body[0]).toBe(rtnl.AF_BRIDGE);
    expect(rtnl.decodeNeigh(f.body)).toEqual({
      kind: 'fdb', ifindex: 9, state: rtnl.NUD_PERMANENT, flags: rtnl.NTF_SELF, ip: ip6('fd00:1::3'), mac: '02:00:00:00:00:03', master: false, plain: true,
    });
    expect(rtnl.decodeNeigh(roundTrip(rtnl.neighDel(ip('10.5.3.0'), 9)).body)).toMatchObject({ kind: 'neigh', ip: ip('10.5.3.0'), mac: undefined });
  });

  it("encodes bodies into Buffer's shared pool, not one C-allocated ArrayBuffer per message", () => {
    // Each ArrayBuffer of its own costs four small malloc()s; a full sync's 15,000 bodies
    // left the idle agent's C heap fragmented (docs/performance.md, the idle RSS's third pass).
    const a = rtnl.neighReplace(ip('10.5.3.0'), mac('02:00:00:00:00:03'), 9);
    const b = rtnl.routeReplace({ dst: cidr('10.5.3.0/24'), via: ip('10.5.3.0'), oif: 9, onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0 });
    expect(a.body.buffer).toBe(b.body.buffer);
    expect(a.body.buffer.byteLength).toBeGreaterThan(a.body.length + b.body.length);
    expect(rtnl.decodeNeigh(roundTrip(a).body)).toMatchObject({ ip: ip('10.5.3.0'), mac: '02:00:00:00:00:03' });
  });

  it('encodes a vxlan device with nested link info', () => {
    const m = roundTrip(rtnl.vxlanCreate({ name: 'flannel.1', vni: 1, local: ip('192.0.2.1'), linkIndex: 2, port: 8472, gbp: true, mtu: 1450 }));
    expect(rtnl.decodeLink(m.body)).toEqual({
      index: 0, name: 'flannel.1', flags: rtnl.IFF_UP, mtu: 1450, mac: undefined, kind: 'vxlan',
      vxlan: { vni: 1, link: 2, local: ip('192.0.2.1'), port: 8472, learning: false, gbp: true },
    });
  });

  it("sets and reads a device's alias (weft's owner mark) as IFLA_IFALIAS, without a NUL", () => {
    const m = roundTrip(rtnl.linkSetAlias(7, 'weft:default'));
    expect(m.type).toBe(rtnl.RTM_NEWLINK);
    expect(rtnl.decodeLink(m.body)).toMatchObject({ index: 7, alias: 'weft:default' });
    expect(m.body.includes(Buffer.from('weft:default\0'))).toBe(false);
  });

  it('asks for a route lookup as `ip route get` does, and reads its device and preferred source', () => {
    const m = roundTrip(rtnl.routeGet(ip6('fd00:9::7')));
    expect(m.type).toBe(rtnl.RTM_GETROUTE);
    expect(m.flags).toBe(rtnl.NLM_F_REQUEST); // no ACK: the answer is the only reply
    expect([...m.body.subarray(0, 2)]).toEqual([rtnl.AF_INET6, 128]);
    expect(rtnl.decodeRoute(m.body)).toMatchObject({ family: 6, dst: net6('fd00:9::7/128'), prefsrc: undefined });
    // The kernel's answer: RTA_DST, RTA_OIF 3, RTA_PREFSRC 192.0.2.1.
    const answer = Buffer.from([2, 32, 0, 0, 254, 2, 0, 1, 0, 2, 0, 0, 8, 0, 1, 0, 10, 1, 2, 3, 8, 0, 4, 0, 3, 0, 0, 0, 8, 0, 7, 0, 192, 0, 2, 1]);
    expect(rtnl.decodeRoute(answer)).toMatchObject({ dst: cidr('10.1.2.3/32'), oif: 3, prefsrc: ip('192.0.2.1') });
  });

  it("reads an address's scope, and its flags from IFA_FLAGS when the kernel sends them (dadfailed)", () => {
    // ifaddrmsg: AF_INET6, /64, flags 0x80 (permanent), scope 0 (global), index 4; IFA_ADDRESS; IFA_FLAGS 0x88.
    const addr = [0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5];
    const body = Buffer.from([10, 64, 0x80, 0, 4, 0, 0, 0, 20, 0, 1, 0, ...addr, 8, 0, 8, 0, 0x88, 0, 0, 0]);
    expect(rtnl.decodeAddr(body)).toEqual({ family: 6, prefix: 64, index: 4, ip: ip6('fd00:2::5'), scope: 0, flags: 0x88 });
    expect(rtnl.decodeAddr(body.subarray(0, 28))).toMatchObject({ flags: 0x80 }); // no IFA_FLAGS: ifa_flags
    expect(rtnl.decodeAddr(body)!.flags & rtnl.IFA_F_DADFAILED).not.toBe(0);
    body[3] = 253; // link scope
    expect(rtnl.decodeAddr(body)).toMatchObject({ scope: 253 });
  });

  it('survives truncated and hostile input without throwing', () => {
    const good = rtnl.frame([rtnl.neighDel(ip('10.5.3.0'), 9)], 1);
    expect(rtnl.parseMessages(good.subarray(0, 20)).messages).toEqual([]);
    const lying = Buffer.from(good);
    lying.writeUInt32LE(4096, 0); // a length beyond the datagram
    expect(rtnl.parseMessages(lying)).toEqual({ messages: [], malformed: true });
    expect(rtnl.decodeRoute(Buffer.alloc(5))).toBeUndefined();
    const badAttr = Buffer.concat([Buffer.from([2, 24, 0, 0, 254, 119, 0, 1, 0, 0, 0, 0]), Buffer.from([200, 0, 1, 0, 10, 5])]);
    expect(rtnl.decodeRoute(badAttr)).toBeUndefined(); // a /24 whose destination attribute is cut short
    expect(rtnl.decodeNeigh(Buffer.from([99, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]))).toBeUndefined();
  });
});

/** A fake native socket: records datagrams; the test plays the kernel's answers. */
class FakeRaw {
  static last: FakeRaw;
  sent: Buffer[] = [];
  private handlers: Record<string, ((x: never) => void)[]> = {};
  constructor() {
    FakeRaw.last = this;
  }
  on(event: string, fn: (x: never) => void) {
    (this.handlers[event] ??= []).push(fn);
  }
  emit(event: string, x: unknown) {
    for (const fn of this.handlers[event] ?? []) fn(x as never);
  }
  send(msg: Buffer, _opts: unknown, cb: (err?: Error) => void) {
    this.sent.push(msg);
    setImmediate(() => cb());
  }
  close() {}
  unref() {}
  setRecvBufferSize() {}
}

function errorReply(seq: number, errno: number): Buffer {
  const b = Buffer.alloc(16 + 4 + 16);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(rtnl.NLMSG_ERROR, 4);
  b.writeUInt32LE(seq, 8);
  b.writeInt32LE(-errno, 16);
  b.writeUInt32LE(seq, 20 + 8);
  return b;
}

describe('the netlink request socket', () => {
  it('asks for one ACK per window and reports each refusal by its sequence number', async () => {
    const sock = new NetlinkSocket(FakeRaw as never);
    const reqs = [0, 1, 2].map((i) => rtnl.neighReplace(ip(`10.5.${i}.0`), mac('02:00:00:00:00:01'), 3));
    const done = sock.transact(reqs);
    await new Promise((r) => setImmediate(r));
    const { messages } = rtnl.parseMessages(FakeRaw.last.sent[0]!);
    expect(messages.map((m) => (m.flags & rtnl.NLM_F_ACK) !== 0)).toEqual([false, false, true]);
    const [s0, s1, s2] = messages.map((m) => m.seq);
    FakeRaw.last.emit('message', Buffer.concat([errorReply(s1!, 17), errorReply(s2!, 0)]));
    expect(await done).toEqual([0, 17, 0]);
    expect(s0).toBeLessThan(s1!);
  });

  it('fails what waits when the socket overflows, and survives an answer before its send completes', async () => {
    const sock = new NetlinkSocket(FakeRaw as never);
    const done = sock.transact([rtnl.neighDel(ip('10.5.1.0'), 3)]);
    await new Promise((r) => setImmediate(r));
    FakeRaw.last.emit('error', Object.assign(new Error('No buffer space available'), { errno: ENOBUFS }));
    expect(await done).toEqual([ENOBUFS]);

    // The kernel's refusal arrives before the send callback: no unhandled rejection, a typed error.
    const sock2 = new NetlinkSocket(FakeRaw as never);
    const raw = FakeRaw.last;
    const asked = sock2.request(rtnl.linkGet('flannel.1'));
    const seq = rtnl.parseMessages(raw.sent[0]!).messages[0]!.seq;
    raw.emit('message', errorReply(seq, 19));
    await expect(asked).rejects.toMatchObject({ name: 'NetlinkError', errno: 19 });
  });

  it('gives up on a window whose ACK never comes after 5 s, then answers the next window as usual', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
    try {
      const sock = new NetlinkSocket(FakeRaw as never);
      const raw = FakeRaw.last;
      raw.send = (msg: Buffer, _opts: unknown, cb: (err?: Error) => void) => {
        raw.sent.push(msg);
        cb();
      };
      // A window answered at once, then one never answered: the deadline counts from its own send.
      const first = sock.transact([rtnl.neighDel(ip('10.5.1.0'), 3)]);
      await vi.advanceTimersByTimeAsync(0); // transact runs after the calls before it
      raw.emit('message', errorReply(rtnl.parseMessages(raw.sent[0]!).messages[0]!.seq, 0));
      expect(await first).toEqual([0]);
      await vi.advanceTimersByTimeAsync(3_000);
      let lost: number[] | undefined;
      void sock.transact([rtnl.neighDel(ip('10.5.2.0'), 3), rtnl.neighDel(ip('10.5.3.0'), 3)]).then((e) => (lost = e));
      await vi.advanceTimersByTimeAsync(4_000);
      expect(lost).toBeUndefined();
      await vi.advanceTimersByTimeAsync(1_100);
      expect(lost).toEqual([ETIMEDOUT, ETIMEDOUT]);
      const next = sock.transact([rtnl.neighDel(ip('10.5.4.0'), 3)]);
      await vi.advanceTimersByTimeAsync(0);
      raw.emit('message', errorReply(rtnl.parseMessages(raw.sent[2]!).messages[0]!.seq, 2));
      expect(await next).toEqual([2]);
    } finally {
      vi.useRealTimers();
    }
  });
});

/** The messages of one dump answer, as the kernel sends them: NLM_F_MULTI parts under the request's sequence number. */
function dumpAnswer(seq: number, parts: rtnl.Request[]): Buffer {
  return Buffer.concat(parts.map((p) => rtnl.frame([{ ...p, flags: rtnl.NLM_F_MULTI }], seq)));
}
const done = (seq: number) => rtnl.frame([{ type: rtnl.NLMSG_DONE, flags: rtnl.NLM_F_MULTI, body: Buffer.alloc(4) }], seq);

describe('streamed dumps (the periodic resync)', () => {
  it("hands each message over as its datagram arrives, and fails after DONE when the consumer throws", async () => {
    const sock = new NetlinkSocket(FakeRaw as never);
    const raw = FakeRaw.last;
    const seen: number[] = [];
    const route = (n: number) => rtnl.routeReplace({ dst: cidr(`10.5.${n}.0/24`), via: ip(`10.5.${n}.0`), oif: 3, onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0 });
    const dumped = sock.dumpEach(rtnl.dump(rtnl.RTM_GETROUTE, rtnl.AF_INET), (m) => void seen.push(Number(rtnl.decodeRoute(m.body)!.dst.network.toString().split(".")[2])));
    const seq = rtnl.parseMessages(raw.sent[0]!).messages[0]!.seq;
    raw.emit('message', dumpAnswer(seq, [route(1), route(2)]));
    expect(seen).toEqual([1, 2]); // before the dump ends
    raw.emit('message', Buffer.concat([dumpAnswer(seq, [route(3)]), done(seq)]));
    await dumped;
    expect(seen).toEqual([1, 2, 3]);

    let calls = 0;
    const failing = sock.dumpEach(rtnl.dump(rtnl.RTM_GETROUTE, rtnl.AF_INET), () => {
      calls++;
      throw new Error('consumer bug');
    });
    failing.catch(() => {});
    const seq2 = rtnl.parseMessages(raw.sent[1]!).messages[0]!.seq;
    raw.emit('message', dumpAnswer(seq2, [route(1), route(2)]));
    raw.emit('message', done(seq2));
    await expect(failing).rejects.toThrow('consumer bug');
    expect(calls).toBe(1); // the rest of the dump is read and dropped
    // The socket still answers the next request.
    const next = sock.request(rtnl.linkGet('flannel.1'));
    raw.emit('message', errorReply(rtnl.parseMessages(raw.sent[2]!).messages[0]!.seq, 19));
    await expect(next).rejects.toMatchObject({ errno: 19 });
  });

  it('reads routes, neighbours and FDB entries of its devices from three streamed dumps', async () => {
    // A scripted kernel: flannel.1 is index 5, eth0 index 2; every dump comes in two datagrams.
    class Kernel extends FakeRaw {
      override send(msg: Buffer, opts: unknown, cb: (err?: Error) => void) {
        super.send(msg, opts, cb);
        const m = rtnl.parseMessages(msg).messages[0]!;
        const family = m.body.readUInt8(0);
        let parts: rtnl.Request[] = [];
        if (m.type === rtnl.RTM_GETLINK) {
          const name = m.body.length > 20 ? m.body.subarray(20).toString('latin1').replace(/\0.*$/s, '') : '';
          const index = name === 'flannel.1' ? 5 : name === 'eth0' ? 2 : 0;
          const link = rtnl.vxlanCreate({ name, vni: 1, local: ip('192.0.2.1'), linkIndex: 2, port: 0, gbp: false, mtu: 1450 });
          link.body.writeInt32LE(index, 4);
          setImmediate(() => this.emit('message', rtnl.frame([{ ...link, flags: 0 }], m.seq)));
          return;
        }
        const r = (dst: string, via: string, oif: number, proto: number) => rtnl.routeReplace({ dst: cidr(dst), via: ip(via), oif, onlink: true, proto, metric: 0 });
        if (m.type === rtnl.RTM_GETROUTE) {
          parts = [r('10.5.2.0/24', '10.5.2.0', 5, WEFT_ROUTE_PROTO), r('10.5.3.0/24', '10.5.3.0', 5, WEFT_ROUTE_PROTO), r('10.5.4.0/24', '192.0.2.4', 2, WEFT_ROUTE_PROTO), r('10.9.0.0/16', '192.0.2.254', 2, 3)];
        } else if (m.type === rtnl.RTM_GETNEIGH && family === rtnl.AF_INET) {
          parts = [rtnl.neighReplace(ip('10.5.2.0'), mac('02:00:00:00:00:02'), 5), rtnl.neighReplace(ip('192.0.2.9'), mac('02:00:00:00:00:09'), 2)];
        } else if (m.type === rtnl.RTM_GETNEIGH) {
          parts = [rtnl.fdbReplace(mac('02:00:00:00:00:02'), ip('192.0.2.2'), 5), rtnl.fdbReplace(mac('02:00:00:00:00:03'), ip('192.0.2.3'), 5)];
        }
        const half = Math.ceil(parts.length / 2);
        setImmediate(() => this.emit('message', dumpAnswer(m.seq, parts.slice(0, half))));
        setImmediate(() => this.emit('message', Buffer.concat([dumpAnswer(m.seq, parts.slice(half)), done(m.seq)])));
      }
    }
    const channel = new NetlinkChannel(Kernel as never, createLogger({ level: 'error' }));
    try {
      const state = await channel.observe({ vxlanDev: fl, uplinkDev: eth, uplinkScope: cidr('10.5.0.0/16') });
      expect([...state.routes.keys()]).toEqual(['10.5.2.0/24', '10.5.3.0/24', '10.5.4.0/24']);
      expect(state.routes.get('10.5.4.0/24')!.dev).toBe('eth0');
      expect([...state.neighs.keys()]).toEqual(['10.5.2.0']);
      expect([...state.fdb.entries()].map(([k, f]) => `${k} ${f.dst}`)).toEqual(['02:00:00:00:00:02 192.0.2.2', '02:00:00:00:00:03 192.0.2.3']);
      expect([...state.foreign!.values()].map((f) => `${f.dst} ${f.dev}`)).toEqual(['10.9.0.0/16 eth0']);
    } finally {
      channel.close();
    }
  });
});

describe("the agent's own changes in the notification stream", () => {
  it('learns its port id from the kernel replies', async () => {
    const sock = new NetlinkSocket(FakeRaw as never);
    expect(sock.portId).toBe(0);
    const done = sock.transact([rtnl.neighDel(ip('10.5.1.0'), 3)]);
    await new Promise((r) => setImmediate(r));
    const reply = errorReply(rtnl.parseMessages(FakeRaw.last.sent[0]!).messages[0]!.seq, 0);
    reply.writeUInt32LE(4242, 12); // nlmsg_pid: the kernel addresses its reply to our port
    FakeRaw.last.emit('message', reply);
    expect(await done).toEqual([0]);
    expect(sock.portId).toBe(4242);
  });

  it("skips only route and neighbour changes carrying this socket's port id", () => {
    const own = 4242;
    for (const type of [rtnl.RTM_NEWROUTE, rtnl.RTM_DELROUTE, rtnl.RTM_NEWNEIGH, rtnl.RTM_DELNEIGH]) {
      expect(ownChange({ type, pid: own }, own)).toBe(true);
      expect(ownChange({ type, pid: 977 }, own)).toBe(false); // `ip route del` by someone else
      expect(ownChange({ type, pid: 0 }, own)).toBe(false); // the kernel's own (vxlan FDB, flushes)
      expect(ownChange({ type, pid: own }, 0)).toBe(false); // port id not known yet
    }
    // Links and addresses are always read: they carry the device's state and index.
    expect(ownChange({ type: rtnl.RTM_NEWLINK, pid: own }, own)).toBe(false);
    expect(ownChange({ type: rtnl.RTM_NEWADDR, pid: own }, own)).toBe(false);
  });
});

describe('judging kernel notifications', () => {
  const targets = { vxlanDev: fl, uplinkDev: eth, uplinkScope: cidr('10.5.0.0/16'), family: 4 as const };
  const route = (n: number, over: Partial<RouteEntry> = {}): RouteEntry => ({
    dst: cidr(`10.5.${n}.0/24`), via: ip(`10.5.${n}.0`), dev: fl, onlink: true, proto: WEFT_ROUTE_PROTO, metric: 0, ...over,
  });
  const ev = (action: 'new' | 'del', r: RouteEntry): KernelEvent => ({ kind: 'route', action, route: r, table: 254, type: 1 });
  const setup = () => {
    const desired = emptyState();
    desired.routes.set('10.5.3.0/24', route(3));
    desired.neighs.set('10.5.3.0', { ip: ip('10.5.3.0'), mac: mac('02:00:00:00:00:03'), dev: fl, permanent: true });
    const believed = emptyState();
    believed.routes.set('10.5.3.0/24', route(3));
    believed.routes.set('10.5.4.0/24', route(4)); // about to be deleted by weft itself
    believed.neighs.set('10.5.3.0', { ip: ip('10.5.3.0'), mac: mac('02:00:00:00:00:03'), dev: fl, permanent: true });
    return { desired, believed };
  };

  it("ignores weft's own changes and reports someone else's", () => {
    const { desired, believed } = setup();
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(3)))).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, ev('del', route(4)))).toEqual({ kind: 'none' }); // weft removing a peer
    expect(believed.routes.has('10.5.4.0/24')).toBe(false);
    expect(judgeKernelEvent(believed, desired, targets, ev('del', route(3)))).toEqual({ kind: 'entries', routes: ['10.5.3.0/24'], neighs: [], fdb: [] });
    expect(believed.routes.has('10.5.3.0/24')).toBe(false);
    // A route weft does not want, added on its device; a changed gateway.
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(9)))).toMatchObject({ kind: 'entries', routes: ['10.5.9.0/24'] });
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(3, { via: ip('10.5.3.9') })))).toMatchObject({ kind: 'entries', routes: ['10.5.3.0/24'] });
  });

  it("leaves the operator's routes, other devices and other families alone", () => {
    const { desired, believed } = setup();
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(5, { dev: eth, proto: 4 })))).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(5, { dev: eth, dst: cidr('10.9.5.0/24') })))).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, ev('del', route(3, { dev: 'cni0' as LinkName })))).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'route', action: 'del', route: route(3), table: 255, type: 1 })).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(3, { proto: 2 })))).toEqual({ kind: 'none' }); // the kernel's own
  });

  it("never repairs someone else's route: its destination becomes foreign, and a weft route it replaced is gone", () => {
    const { desired, believed } = setup();
    believed.foreign = new Map();
    // `ip route replace 10.5.3.0/24 dev eth0 proto static` over weft's route to 10.5.3.0/24.
    expect(judgeKernelEvent(believed, desired, targets, ev('new', route(3, { dev: eth, via: undefined, onlink: false, proto: 4 })))).toEqual({ kind: 'none' });
    expect(believed.foreign.get('10.5.3.0/24')).toMatchObject({ dev: 'eth0', proto: 4 });
    expect(believed.routes.has('10.5.3.0/24')).toBe(false);
    // A blackhole in the main table is foreign too; its removal waits for the next dump.
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'route', action: 'new', route: route(6, { dev: eth, proto: 4 }), table: 254, type: 6 })).toEqual({ kind: 'none' });
    expect(believed.foreign.has('10.5.6.0/24')).toBe(true);
    expect(judgeKernelEvent(believed, desired, targets, ev('del', route(3, { dev: eth, via: undefined, onlink: false, proto: 4 })))).toEqual({ kind: 'none' });
    expect(believed.foreign.has('10.5.3.0/24')).toBe(true);
  });

  it('reports a neighbour deleted or made non-permanent, and asks to re-read when the device goes', () => {
    const { desired, believed } = setup();
    const gone: KernelEvent = { kind: 'neigh', action: 'new', neigh: undefined, ip: ip('10.5.3.0'), dev: fl };
    expect(judgeKernelEvent(believed, desired, targets, gone)).toEqual({ kind: 'entries', routes: [], neighs: ['10.5.3.0'], fdb: [] });
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'link', action: 'new', dev: fl, up: false, mtu: 1450 })).toMatchObject({ kind: 'reread' });
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'link', action: 'del', dev: fl, up: false, mtu: undefined })).toMatchObject({ kind: 'reread' });
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'link', action: 'new', dev: fl, up: true, mtu: 1450 })).toEqual({ kind: 'none' });
    expect(judgeKernelEvent(believed, desired, targets, { kind: 'lost' })).toMatchObject({ kind: 'reread' });
  });
});

describe('drift loops', () => {
  it('repairs at once until the same entry keeps coming back, then backs off and says so once', () => {
    const lines: string[] = [];
    let t = 0;
    const guard = new DriftGuard(createLogger({ level: 'debug', format: 'text', write: (l) => lines.push(l) }), () => t);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      delays.push(guard.delayFor('route 10.5.3.0/24'));
      t += 1000;
    }
    // Five repairs at once, then RETRY.driftLoop's delays: 1 s, 2 s, 4 s, each drawn in [d/2, d).
    expect(delays.slice(0, 5)).toEqual([0, 0, 0, 0, 0]);
    delays.slice(5).forEach((d, i) => {
      const cap = 1000 * 2 ** i;
      expect(d).toBeGreaterThanOrEqual(cap / 2);
      expect(d).toBeLessThan(cap);
    });
    expect(lines.filter((l) => l.includes('keeps undoing'))).toHaveLength(1);
    expect(guard.delayFor('route 10.5.4.0/24')).toBe(0); // another entry is not held back
    t += 60_000; // quiet for a while: repairs are immediate again
    expect(guard.delayFor('route 10.5.3.0/24')).toBe(0);
  });
});

describe('the notification stream (rtmon through a FIFO)', () => {
  it('reassembles messages cut across reads and drops rtmon timestamps', async () => {
    const { MessageStream } = await import('../../src/dataplane/kernel-watch.js');
    const tstamp = Buffer.alloc(24);
    tstamp.writeUInt32LE(24, 0);
    tstamp.writeUInt16LE(15, 4);
    const route = rtnl.frame([rtnl.routeDel({ dst: cidr('10.5.3.0/24'), via: undefined, oif: 4, onlink: false, proto: 119, metric: 0 })], 9);
    const all = Buffer.concat([tstamp, route, tstamp, route]);
    const s = new MessageStream();
    const got: [number, string | undefined][] = [];
    const each = (m: rtnl.Message) => got.push([m.type, rtnl.decodeRoute(m.body)?.dst.toString()]);
    s.push(all.subarray(0, 30), each);
    s.push(all.subarray(30, 70), each);
    s.push(all.subarray(70), each);
    expect(got).toEqual([
      [rtnl.RTM_DELROUTE, '10.5.3.0/24'],
      [rtnl.RTM_DELROUTE, '10.5.3.0/24'],
    ]);
    const bad = Buffer.alloc(16);
    bad.writeUInt32LE(3, 0);
    expect(() => new MessageStream().push(bad, () => {})).toThrow(/bad netlink message length/);
  });

  it('keeps a partial message as a copy: the reader reads the next chunk into the same buffer', async () => {
    const { MessageStream } = await import('../../src/dataplane/kernel-watch.js');
    const route = rtnl.frame([rtnl.routeDel({ dst: cidr('10.5.3.0/24'), via: undefined, oif: 4, onlink: false, proto: 119, metric: 0 })], 9);
    const readBuffer = Buffer.alloc(4096);
    const s = new MessageStream();
    const got: string[] = [];
    const each = (m: rtnl.Message) => got.push(`${m.seq} ${rtnl.decodeRoute(m.body)?.dst.toString()}`);
    // One and a half messages, then (into the same buffer) the rest and a whole one.
    const first = Buffer.concat([route, route.subarray(0, 20)]);
    first.copy(readBuffer);
    s.push(readBuffer.subarray(0, first.length), each);
    readBuffer.fill(0xff);
    const second = Buffer.concat([route.subarray(20), route]);
    second.copy(readBuffer);
    s.push(readBuffer.subarray(0, second.length), each);
    expect(got).toEqual(['9 10.5.3.0/24', '9 10.5.3.0/24', '9 10.5.3.0/24']);
  });
});
