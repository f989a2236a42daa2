// The kernel channel: how planned operations reach the kernel, how weft's kernel state is
// read back, and (netlink only) how changes made by others are seen as they happen.
//
// Two implementations behind one interface:
//   - netlink: requests and dumps from the agent's own process (no process per event), each
//     request answered with its own errno; the kernel's change notifications come through
//     one long-lived reader (kernel-watch.ts).
//   - iproute2: `ip|bridge -force -batch -` per plan and `-json` dumps (batch.ts, observe.ts).
//     Used when the netlink binding cannot load, when WEFT_KERNEL_CHANNEL=iproute2, and for a
//     runner aimed at another namespace (tests drive a namespace from outside it: a socket
//     can only be opened in the caller's own namespace).
import { getSystemErrorName } from 'node:util';
import { Ipv6, type IpAddr } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { dependsOnRefused, execute, type ExecResult } from './batch.js';
import type { IpRunner } from './ipcmd.js';
import { DataplaneError } from './errors.js';
import { emptyState, isLinkLocal6, toLinkName, toMac, type Family, type FdbEntry, type ForeignRoute, type KernelState, type LinkName, type NeighEntry, type RouteEntry } from './model.js';
import { ENOBUFS, loadNetlink, NetlinkError, NetlinkSocket } from './netlink.js';
import { KernelWatch } from './kernel-watch.js';
import { NetlinkWorker, NOT_SENT } from './netlink-worker.js';
import { feedSink, isOwnedRoute, observe, parseDevice, stateSink, type DeviceInfo, type KernelSink, type ObserveTargets } from './observe.js';
import type { Op } from './planner.js';
import * as rtnl from './rtnl.js';

/** What the kernel said about one operation: 0 = done, else an errno. */
export interface ApplyResult extends ExecResult {
  /** errno[i] for ops[i]: 0 applied; a positive errno refused; undefined = not attempted or unknown. */
  errno: (number | undefined)[];
}

/** A change someone (possibly weft itself) made to a kernel object, decoded. */
export type KernelEvent =
  | { kind: 'route'; action: 'new' | 'del'; route: RouteEntry; table: number; type: number }
  | { kind: 'neigh'; action: 'new' | 'del'; neigh: NeighEntry | undefined; ip: IpAddr | undefined; dev: LinkName }
  | { kind: 'fdb'; action: 'new' | 'del'; fdb: FdbEntry }
  | { kind: 'link'; action: 'new' | 'del'; dev: LinkName; up: boolean; mtu: number | undefined }
  | { kind: 'addr'; action: 'new' | 'del'; dev: LinkName; ip: IpAddr; prefix: number }
  /** Notifications were dropped (the socket overflowed): anything may have changed. */
  | { kind: 'lost' };

export interface KernelChannel {
  readonly kind: 'netlink' | 'iproute2';
  /**
   * Runs a plan in its order; a route replace is skipped when its neighbour or FDB entry was
   * refused. `bulk`: one of several chunks of a large pass, sent while the caller models the
   * next (netlink sends them from another thread, in the order of the calls).
   */
  apply(ops: Op[], opts?: { bulk?: boolean }): Promise<ApplyResult>;
  /** A bulk pass is coming: get ready for it (netlink starts its thread). */
  prepareBulk?(): void;
  /** What weft owns on the targets' devices, read now. */
  observe(targets: ObserveTargets): Promise<KernelState>;
  /** The same, handed to `sink` entry by entry (netlink: as the dumps arrive, holding none of them). */
  observeInto(targets: ObserveTargets, sink: KernelSink): Promise<void>;
  /** Kernel changes as they happen (netlink only; undefined for iproute2). Returns an unsubscribe. */
  watch?(listener: (e: KernelEvent) => void): () => void;
  /** The device with its addresses of the family, or undefined when it does not exist. */
  readDevice(name: LinkName, family: Family): Promise<DeviceInfo | undefined>;
  /** Device changes, in order; throws a DataplaneError naming `step` on a refusal. */
  changeDevice(step: string, device: LinkName, changes: DeviceChange[]): Promise<void>;
}

export type DeviceChange =
  | { kind: 'create-vxlan'; vni: number; local: IpAddr; uplink: LinkName; port: number; gbp: boolean; mtu: number }
  /** Set the MTU and bring it up. */
  | { kind: 'mtu-up'; mtu: number }
  | { kind: 'delete' }
  /** Set the device's alias: weft's owner mark, weft:<network> (validated by the backend). */
  | { kind: 'alias'; alias: string }
  | { kind: 'addr-replace'; ip: IpAddr; prefix: number; nodad: boolean }
  | { kind: 'addr-del'; ip: IpAddr; prefix: number };

/** The iproute2 batch lines for device changes (typed values only, as every batch line). */
export function deviceLines(device: LinkName, changes: DeviceChange[]): string[] {
  return changes.map((c) => {
    switch (c.kind) {
      case 'create-vxlan':
        return ['link add', device, 'type vxlan id', String(c.vni), 'local', c.local.toString(), 'dev', c.uplink, 'nolearning dstport', String(c.port), ...(c.gbp ? ['gbp'] : [])].join(' ');
      case 'mtu-up':
        return `link set ${device} mtu ${c.mtu} up`;
      case 'delete':
        return `link del ${device}`;
      case 'alias':
        return `link set dev ${device} alias ${c.alias}`;
      case 'addr-replace':
        return `addr replace ${c.ip.toString()}/${c.prefix} dev ${device}${c.nodad ? ' nodad' : ''}`;
      case 'addr-del':
        return `addr del ${c.ip.toString()}/${c.prefix} dev ${device}`;
    }
  });
}

/** The name of an errno for logs ("ENETUNREACH"), or the number when unknown. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

// ---- iproute2 ----

export class IprouteChannel implements KernelChannel {
  readonly kind = 'iproute2';
  constructor(readonly runner: IpRunner) {}

  async apply(ops: Op[]): Promise<ApplyResult> {
    const r = await execute(this.runner, ops);
    return { ...r, errno: r.ok.map((ok) => (ok ? 0 : undefined)) };
  }

  observe(targets: ObserveTargets): Promise<KernelState> {
    return observe(this.runner, targets);
  }

  async observeInto(targets: ObserveTargets, sink: KernelSink): Promise<void> {
    feedSink(await observe(this.runner, targets), sink);
  }

  async readDevice(name: LinkName, family: Family): Promise<DeviceInfo | undefined> {
    const r = await this.runner.run('ip', ['-details', '-json', 'addr', 'show', 'dev', name]);
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return undefined;
      throw new DataplaneError(`cannot read ${name}`, { device: name, step: 'read device', errors: [r.stderr.trim()] });
    }
    const info = parseDevice(JSON.parse(r.stdout || '[]') as unknown, family);
    if (!info) throw new DataplaneError(`cannot parse the description of ${name}`, { device: name, step: 'read device' });
    return info;
  }

  async changeDevice(step: string, device: LinkName, changes: DeviceChange[]): Promise<void> {
    if (changes.length === 0) return;
    // A change that expands to a line per change, so that a refusal names its line.
    const expanded = changes.flatMap((c): DeviceChange[] => (c.kind === 'create-vxlan' ? [c, { kind: 'mtu-up', mtu: c.mtu }] : [c]));
    const r = await this.runner.batch('ip', deviceLines(device, expanded));
    if (r.failures > 0) throw new DataplaneError(`${step} failed for ${device}`, { device, step, errors: r.errors });
  }
}

// ---- netlink ----

const ENODEV = 19;
const ENOENT = 2;
const ESRCH = 3;
const EADDRNOTAVAIL = 99;

/** A delete whose object is already gone has reached its goal. */
function goneAlready(op: Op, errno: number): boolean {
  return op.action === 'del' && (errno === ENOENT || errno === ESRCH || (op.kind === 'neigh' && errno === EADDRNOTAVAIL));
}

function describe(op: Op): string {
  switch (op.kind) {
    case 'route':
      return `route ${op.action} ${op.entry.dst} dev ${op.entry.dev}`;
    case 'neigh':
      return `neigh ${op.action} ${op.entry.ip} dev ${op.entry.dev}`;
    case 'fdb':
      return `fdb ${op.action} ${op.entry.mac} dst ${op.entry.dst} dev ${op.entry.dev}`;
  }
}

export class NetlinkChannel implements KernelChannel {
  readonly kind = 'netlink';
  private readonly sock: NetlinkSocket;
  /** The socket in a worker thread for bulk chunks (netlink-worker.ts); started on first use. */
  private readonly bulk = new NetlinkWorker();
  private watcher: KernelWatch | undefined;
  private readonly listeners = new Set<(e: KernelEvent) => void>();
  /** Interface indexes by name and back; kept current by link notifications while watching. */
  private readonly indexOf = new Map<string, number>();
  private readonly nameOf = new Map<number, LinkName>();

  constructor(
    Raw: ConstructorParameters<typeof NetlinkSocket>[0],
    private readonly log: Logger,
  ) {
    this.sock = new NetlinkSocket(Raw);
    this.sock.setReceiveBuffer(1 << 20);
    // The sockets are unreferenced (they never keep the agent alive), so the process may exit
    // with them open; a notification read during Node's teardown aborts it inside the binding.
    process.once('exit', () => this.close());
  }

  /** The interface index of a device, asked of the kernel when not known; undefined when it does not exist. */
  async linkIndex(dev: string): Promise<number | undefined> {
    const known = this.knownIndex(dev);
    if (known !== undefined) return known;
    try {
      const [m] = await this.sock.request(rtnl.linkGet(dev));
      const link = m ? rtnl.decodeLink(m.body) : undefined;
      if (!link || link.name !== dev) return undefined;
      this.remember(dev as LinkName, link.index);
      return link.index;
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENODEV) return undefined;
      throw err;
    }
  }

  /** linkIndex's answer when it is cached, without a promise (the event path's case). */
  private knownIndex(dev: string): number | undefined {
    this.watchedNames.add(dev);
    return this.indexOf.get(dev);
  }

  private remember(dev: LinkName, index: number): void {
    const old = this.indexOf.get(dev);
    if (old !== undefined) this.nameOf.delete(old);
    this.indexOf.set(dev, index);
    this.nameOf.set(index, dev);
  }

  private forget(dev: string): void {
    const i = this.indexOf.get(dev);
    if (i !== undefined) this.nameOf.delete(i);
    this.indexOf.delete(dev);
  }

  private request(op: Op, index: number | undefined): rtnl.Request | number {
    if (index === undefined) return ENODEV;
    switch (op.kind) {
      case 'route': {
        const spec = { ...op.entry, oif: index };
        return op.action === 'replace' ? rtnl.routeReplace(spec) : rtnl.routeDel(spec);
      }
      case 'neigh':
        return op.action === 'replace' ? rtnl.neighReplace(op.entry.ip, op.entry.mac, index) : rtnl.neighDel(op.entry.ip, index);
      case 'fdb':
        return op.action === 'replace' ? rtnl.fdbReplace(op.entry.mac, op.entry.dst, index) : rtnl.fdbDel(op.entry.mac, op.entry.dst, index);
    }
  }

  /**
   * Two rounds: everything up to the first route replace (deletes, neighbour and FDB
   * replaces: independent objects), then the rest, leaving out route replaces whose
   * neighbour or FDB entry was just refused. Each round is one datagram per WINDOW ops.
   */
  async apply(ops: Op[], opts: { bulk?: boolean } = {}): Promise<ApplyResult> {
    const errno = new Array<number | undefined>(ops.length).fill(undefined);
    let split = ops.findIndex((op) => op.kind === 'route' && op.action === 'replace');
    if (split < 0) split = ops.length;
    // Every chunk of a bulk pass through the thread (while it works), so they stay in order.
    if (opts.bulk && this.bulk.usable && (await this.applyInThread(ops, split, errno))) {
      // done: both rounds in the thread
    } else {
      await this.round(ops, 0, split, errno);
      await this.round(ops, split, ops.length, errno);
    }
    const ok = errno.map((e) => e === 0);
    const errors: string[] = [];
    errno.forEach((e, i) => {
      if (e !== undefined && e !== 0 && errors.length < 5) errors.push(`${describe(ops[i]!)}: ${errnoName(e)}`);
    });
    return { ok, failures: ok.filter((x) => !x).length, runs: 0, errors, errno };
  }

  /**
   * Both rounds in the bulk thread, which leaves out a route whose neighbour or FDB entry was
   * refused (the rule of dependsOnRefused, as indexes into the first round). False, with
   * nothing sent, when a device's index is not known: the ordinary rounds then deal with it.
   * A device re-created meanwhile (ENODEV) is left to the caller's re-read.
   */
  private async applyInThread(ops: Op[], split: number, errno: (number | undefined)[]): Promise<boolean> {
    const index = new Map<string, number | undefined>();
    // The cached index without an await: then the batch is encoded and handed to the thread
    // within this call, before the caller goes on (Converger.convergeInChunks).
    for (const op of ops) if (!index.has(op.entry.dev)) index.set(op.entry.dev, this.knownIndex(op.entry.dev) ?? (await this.linkIndex(op.entry.dev)));
    const reqs: rtnl.Request[] = [];
    const deps: number[] = [];
    const neighAt = new Map<string, number>();
    const neighMac = new Map<string, string>();
    const fdbAt = new Map<string, number>();
    for (const [i, op] of ops.entries()) {
      const r = this.request(op, index.get(op.entry.dev));
      if (typeof r === 'number') return false;
      reqs.push(r);
      if (i < split) {
        if (op.kind === 'neigh' && op.action === 'replace') {
          neighAt.set(op.key, i);
          neighMac.set(op.key, op.entry.mac);
        }
        if (op.kind === 'fdb' && op.action === 'replace') fdbAt.set(op.entry.mac, i);
        continue;
      }
      const via = op.kind === 'route' && op.action === 'replace' && op.entry.onlink ? (op.entry.via?.toString() ?? '') : undefined;
      const mac = via !== undefined ? neighMac.get(via) : undefined;
      deps.push(via !== undefined ? (neighAt.get(via) ?? -1) : -1, mac !== undefined ? (fdbAt.get(mac) ?? -1) : -1);
    }
    const answers = await this.bulk.transact(reqs, { split, deps: Int32Array.from(deps) });
    answers.forEach((e, i) => {
      errno[i] = e === NOT_SENT ? undefined : goneAlready(ops[i]!, e) ? 0 : e;
    });
    return true;
  }

  /** Starts the bulk thread now, so that it has loaded when the first chunk comes. */
  prepareBulk(): void {
    this.bulk.start();
  }

  private async round(ops: Op[], from: number, to: number, errno: (number | undefined)[], again = false): Promise<void> {
    if (from === to) return;
    // Only a refusal in an earlier round holds a route back; the first round has none to look at.
    const refused = errno.some((e) => e !== undefined && e !== 0) ? dependsOnRefused(ops, (i) => errno[i] !== undefined && errno[i] !== 0) : undefined;
    const reqs: rtnl.Request[] = [];
    const idx: number[] = [];
    const index = new Map<string, number | undefined>();
    for (let i = from; i < to; i++) {
      const dev = ops[i]!.entry.dev;
      if (!index.has(dev)) index.set(dev, this.knownIndex(dev) ?? (await this.linkIndex(dev)));
    }
    for (let i = from; i < to; i++) {
      const op = ops[i]!;
      if (again && errno[i] !== ENODEV) continue;
      if (refused?.(op)) continue;
      const r = this.request(op, index.get(op.entry.dev));
      if (typeof r === 'number') errno[i] = r;
      else {
        reqs.push(r);
        idx.push(i);
      }
    }
    if (reqs.length === 0) return;
    const answers = await this.sock.transact(reqs);
    idx.forEach((opIndex, j) => {
      const e = answers[j]!;
      errno[opIndex] = goneAlready(ops[opIndex]!, e) ? 0 : e;
    });
    // ENODEV with an index from the cache: the device may have been created again under its
    // name (a new index). Ask the kernel once more, and retry if the name now has another index.
    if (again || !answers.includes(ENODEV)) return;
    let moved = false;
    for (const dev of new Set(idx.filter((i) => errno[i] === ENODEV).map((i) => ops[i]!.entry.dev))) {
      const old = this.indexOf.get(dev);
      this.forget(dev);
      const now = await this.linkIndex(dev);
      moved ||= now !== undefined && now !== old;
    }
    if (moved) await this.round(ops, from, to, errno, true);
  }

  /** A device's name from its index (the uplink a vxlan device sits on). */
  private async linkName(index: number): Promise<LinkName | undefined> {
    const known = this.nameOf.get(index);
    if (known) return known;
    try {
      const [m] = await this.sock.request(rtnl.linkGetIndex(index));
      return toLinkName(m ? rtnl.decodeLink(m.body)?.name : undefined);
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENODEV) return undefined;
      throw err;
    }
  }

  async readDevice(name: LinkName, family: Family): Promise<DeviceInfo | undefined> {
    let m: rtnl.Message | undefined;
    try {
      [m] = await this.sock.request(rtnl.linkGet(name));
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENODEV) {
        this.forget(name);
        return undefined;
      }
      throw new DataplaneError(`cannot read ${name}`, { device: name, step: 'read device', errors: [(err as Error).message] });
    }
    const l = m ? rtnl.decodeLink(m.body) : undefined;
    const mac = toMac(l?.mac);
    if (!l || l.name !== name || !mac || l.mtu === undefined) throw new DataplaneError(`cannot parse the description of ${name}`, { device: name, step: 'read device' });
    this.remember(name, l.index);
    const addresses: DeviceInfo['addresses'] = [];
    for (const am of await this.sock.request(rtnl.dump(rtnl.RTM_GETADDR, rtnl.familyNumber(family)))) {
      const a = rtnl.decodeAddr(am.body);
      if (!a || a.index !== l.index || a.family !== family) continue;
      if (a.ip instanceof Ipv6 && isLinkLocal6(a.ip)) continue;
      addresses.push({ ip: a.ip, prefix: a.prefix });
    }
    const vx = l.vxlan;
    return {
      name,
      mac,
      mtu: l.mtu,
      up: (l.flags & rtnl.IFF_UP) !== 0,
      kind: l.kind,
      vni: vx?.vni,
      local: vx?.local,
      link: vx?.link ? await this.linkName(vx.link) : undefined,
      port: vx?.port,
      learning: vx?.learning,
      gbp: vx?.gbp ?? false,
      alias: l.alias,
      addresses,
    };
  }

  async changeDevice(step: string, device: LinkName, changes: DeviceChange[]): Promise<void> {
    const errors: string[] = [];
    for (const c of changes) {
      let req: rtnl.Request;
      if (c.kind === 'create-vxlan') {
        const uplink = await this.linkIndex(c.uplink);
        if (uplink === undefined) throw new DataplaneError(`${step} failed for ${device}`, { device, step, errors: [`uplink ${c.uplink} does not exist`] });
        this.forget(device);
        req = rtnl.vxlanCreate({ name: device, vni: c.vni, local: c.local, linkIndex: uplink, port: c.port, gbp: c.gbp, mtu: c.mtu });
      } else {
        const index = await this.linkIndex(device);
        if (index === undefined) throw new DataplaneError(`${step} failed for ${device}`, { device, step, errors: [`${device} does not exist`] });
        req =
          c.kind === 'mtu-up' ? rtnl.linkSetMtuUp(index, c.mtu)
          : c.kind === 'delete' ? rtnl.linkDel(index)
          : c.kind === 'alias' ? rtnl.linkSetAlias(index, c.alias)
          : c.kind === 'addr-replace' ? rtnl.addrReplace(c.ip, c.prefix, index, c.nodad)
          : rtnl.addrDel(c.ip, c.prefix, index);
      }
      const [errno] = await this.sock.transact([req]);
      if (c.kind === 'delete' || c.kind === 'create-vxlan') this.forget(device);
      if (errno !== 0) errors.push(`${deviceLines(device, [c])[0]}: ${errnoName(errno!)}`);
      if (errors.length > 0) throw new DataplaneError(`${step} failed for ${device}`, { device, step, errors });
    }
  }

  async observe(targets: ObserveTargets): Promise<KernelState> {
    const state = emptyState();
    await this.observeInto(targets, stateSink(state));
    return state;
  }

  /**
   * Streams the three dumps into `sink`, each message decoded as its datagram arrives and then
   * dropped (NetlinkSocket.dumpEach): the periodic resync at 5,000 peers never holds 15,000
   * messages at once.
   */
  async observeInto(targets: ObserveTargets, sink: KernelSink): Promise<void> {
    const family = targets.family ?? 4;
    const af = rtnl.familyNumber(family);
    const vx = targets.vxlanDev ? await this.linkIndex(targets.vxlanDev) : undefined;
    const up = targets.uplinkDev ? await this.linkIndex(targets.uplinkDev) : undefined;
    const vxlanOwned = { onlyWeft: false };
    const uplinkOwned = { onlyWeft: true, scope: targets.uplinkScope };
    // Every main-table route of the family that is not weft's is foreign: the planner never
    // replaces a route to a destination one of those holds (NLM_F_REPLACE, like
    // `ip route replace`, matches on destination and metric, whoever made the route).
    const foreignOifs: [ForeignRoute, number][] = [];
    // One dump at a time: the kernel answers a second one on the same socket with EBUSY.
    await this.sock.dumpEach(rtnl.dump(rtnl.RTM_GETROUTE, af), (m) => {
      const r = rtnl.decodeRoute(m.body);
      if (!r || r.table !== rtnl.RT_TABLE_MAIN || r.family !== family) return;
      const dev = r.type !== rtnl.RTN_UNICAST ? undefined : r.oif === vx ? targets.vxlanDev : r.oif === up ? targets.uplinkDev : undefined;
      if (dev) {
        const entry: RouteEntry = { dst: r.dst, via: r.via, dev, onlink: r.onlink, proto: r.proto, metric: r.metric };
        if (isOwnedRoute(entry, dev === targets.vxlanDev ? vxlanOwned : uplinkOwned)) {
          sink.route(entry);
          return;
        }
      }
      const f: ForeignRoute = { dst: r.dst, dev: undefined, proto: r.proto, type: routeTypeName(r.type) };
      sink.foreign(f);
      if (r.oif !== undefined) foreignOifs.push([f, r.oif]);
    });
    if (vx !== undefined) {
      const dev = targets.vxlanDev!;
      await this.sock.dumpEach(rtnl.dump(rtnl.RTM_GETNEIGH, af), (m) => {
        const n = rtnl.decodeNeigh(m.body);
        const e = n && n.ifindex === vx ? ownedNeigh(n, dev) : undefined;
        if (e) sink.neigh(e);
      });
      await this.sock.dumpEach(rtnl.dump(rtnl.RTM_GETNEIGH, rtnl.AF_BRIDGE), (m) => {
        const n = rtnl.decodeNeigh(m.body);
        const e = n && n.ifindex === vx ? ownedFdb(n, dev, family) : undefined;
        if (e) sink.fdb(e);
      });
    }
    // Device names for the log line of a conflict: a cache hit for the few devices a host has.
    const names = new Map<number, string | undefined>();
    for (const [f, oif] of foreignOifs) {
      if (!names.has(oif)) names.set(oif, this.nameOf.get(oif) ?? (names.size < 64 ? await this.linkName(oif) : undefined));
      f.dev = names.get(oif) ?? `if${oif}`;
    }
  }

  watch(listener: (e: KernelEvent) => void): () => void {
    this.listeners.add(listener);
    // A watch already running has told the others what this listener missed: it reads the kernel again.
    if (this.watcher) queueMicrotask(() => this.listeners.has(listener) && listener({ kind: 'lost' }));
    this.watcher ??= new KernelWatch({ message: (m) => this.notified(m), lost: () => this.emit({ kind: 'lost' }) }, this.log);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.watcher?.close();
        this.watcher = undefined;
      }
    };
  }

  private emit(e: KernelEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure must not stop the others or the socket
      }
    }
  }

  /** Decodes one notification; only devices whose index we know (ours) are reported. */
  private notified(m: rtnl.Message): void {
    if (ownChange(m, this.sock.portId)) return;
    const action = m.type === rtnl.RTM_NEWROUTE || m.type === rtnl.RTM_NEWNEIGH || m.type === rtnl.RTM_NEWLINK || m.type === rtnl.RTM_NEWADDR ? 'new' : 'del';
    switch (m.type) {
      case rtnl.RTM_NEWLINK:
      case rtnl.RTM_DELLINK: {
        const l = rtnl.decodeLink(m.body);
        if (!l) return;
        let dev = this.nameOf.get(l.index);
        // A device of ours created (again) under its name.
        if (!dev && action === 'new' && l.name && this.watchedNames.has(l.name)) {
          dev = l.name as LinkName;
          this.remember(dev, l.index);
        }
        if (!dev) return;
        if (action === 'del' || (l.name !== undefined && l.name !== dev)) {
          // Deleted or renamed away: a later device under the name gets a new index.
          this.nameOf.delete(l.index);
          if (this.indexOf.get(dev) === l.index) this.indexOf.delete(dev);
          this.emit({ kind: 'link', action: 'del', dev, up: false, mtu: undefined });
          return;
        }
        this.emit({ kind: 'link', action, dev, up: (l.flags & rtnl.IFF_UP) !== 0, mtu: l.mtu });
        return;
      }
      case rtnl.RTM_NEWADDR:
      case rtnl.RTM_DELADDR: {
        const a = rtnl.decodeAddr(m.body);
        const dev = a ? this.nameOf.get(a.index) : undefined;
        if (a && dev) this.emit({ kind: 'addr', action, dev, ip: a.ip, prefix: a.prefix });
        return;
      }
      case rtnl.RTM_NEWROUTE:
      case rtnl.RTM_DELROUTE: {
        const r = rtnl.decodeRoute(m.body);
        const dev = r?.oif !== undefined ? this.nameOf.get(r.oif) : undefined;
        if (!r || !dev) return;
        this.emit({ kind: 'route', action, route: { dst: r.dst, via: r.via, dev, onlink: r.onlink, proto: r.proto, metric: r.metric }, table: r.table, type: r.type });
        return;
      }
      case rtnl.RTM_NEWNEIGH:
      case rtnl.RTM_DELNEIGH: {
        const n = rtnl.decodeNeigh(m.body);
        const dev = n ? this.nameOf.get(n.ifindex) : undefined;
        if (!n || !dev) return;
        if (n.kind === 'neigh') {
          this.emit({ kind: 'neigh', action, neigh: ownedNeigh(n, dev), ip: n.ip, dev });
        } else {
          const family = n.ip?.family;
          const f = family ? ownedFdb(n, dev, family) : undefined;
          if (f) this.emit({ kind: 'fdb', action, fdb: f });
        }
        return;
      }
    }
  }

  /** Names whose device was deleted: a link notification with one of them is a device coming back. */
  private readonly watchedNames = new Set<string>();

  close(): void {
    this.watcher?.close();
    this.bulk.close();
    this.sock.close();
  }
}

/**
 * A route or neighbour change made through the socket with port id `portId`: the kernel names
 * the requester's port id in these notifications. Such a change is what weft asked for, never
 * drift, and the operation's own result updates the converger, so it is skipped undecoded (a
 * full sync at 5,000 peers makes 10,000 of them). FDB notifications from vxlan carry port id
 * 0 and are always judged, as is everything while the port id is not known yet (0).
 */
export function ownChange(m: Pick<rtnl.Message, 'type' | 'pid'>, portId: number): boolean {
  if (portId === 0 || m.pid !== portId) return false;
  return m.type === rtnl.RTM_NEWROUTE || m.type === rtnl.RTM_DELROUTE || m.type === rtnl.RTM_NEWNEIGH || m.type === rtnl.RTM_DELNEIGH;
}

const ROUTE_TYPES = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'nat'];

/** iproute2's name for a route type (rtm_type). */
function routeTypeName(type: number): string {
  return ROUTE_TYPES[type] ?? `type ${type}`;
}

/** A permanent neighbour with an IP and MAC; anything else on the device is the kernel's. */
function ownedNeigh(n: rtnl.NeighMsg, dev: LinkName): NeighEntry | undefined {
  if (!n.ip || !n.mac || (n.state & rtnl.NUD_PERMANENT) === 0) return undefined;
  return { ip: n.ip, mac: n.mac, dev, permanent: true };
}

/** The device's own (self) FDB entry with a remote of the family; a bridge's entries are not ours. */
function ownedFdb(n: rtnl.NeighMsg, dev: LinkName, family: 4 | 6): FdbEntry | undefined {
  if (!n.mac || !n.ip || n.ip.family !== family || (n.flags & rtnl.NTF_SELF) === 0 || n.master) return undefined;
  return { mac: n.mac, dst: n.ip, dev, permanent: (n.state & rtnl.NUD_PERMANENT) !== 0, plain: n.plain };
}

// ---- choosing ----

let shared: NetlinkChannel | undefined;
let saidFallback = false;

/**
 * The channel for a runner: netlink for this process's own namespace when the binding loads
 * (one per process, shared by the IPv4 and IPv6 backends: one socket pair), else iproute2.
 * Says once, clearly, why it falls back.
 */
export function kernelChannelFor(runner: IpRunner, log: Logger): KernelChannel {
  if (runner.netns !== undefined) return new IprouteChannel(runner);
  if (shared) return shared;
  const nl = loadNetlink();
  if ('Raw' in nl) {
    try {
      shared = new NetlinkChannel(nl.Raw, log);
      log.info('kernel channel: netlink', {});
      return shared;
    } catch (err) {
      return fallback(runner, log, (err as Error).message);
    }
  }
  return fallback(runner, log, nl.error);
}

function fallback(runner: IpRunner, log: Logger, why: string): KernelChannel {
  if (!saidFallback) {
    saidFallback = true;
    log.warn('netlink is unavailable; programming the kernel with iproute2 batch processes instead (one or more per change), and kernel drift is repaired at the periodic resync only', { reason: why });
  }
  return new IprouteChannel(runner);
}

export { ENOBUFS };
