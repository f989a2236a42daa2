// The vxlan backend: device flannel.<VNI>, its /32 address, and per peer a permanent
// neighbour, an FDB entry and an onlink route (or, with directRouting, a plain route via the
// peer's public IP when it is on-link).
//
// The IPv6 backend is the same with flanneld's IPv6 names and sizes: device flannel-v6.<VNI>
// over the uplink's IPv6 address, address <own IPv6 subnet>/128, 70 bytes of encapsulation.
import { writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import type { IpAddr, IpNet } from '../alloc/cidr.js';
import { DEFAULT_VXLAN_PORT } from '../api/network.js';
import type { Logger } from '../log.js';
import { kernelChannelFor, type DeviceChange, type KernelChannel, type KernelEvent } from './channel.js';
import { describeDrift, DriftSignal } from './drift.js';
import { DataplaneError } from './errors.js';
import type { IpRunner } from './ipcmd.js';
import { isLinkLocal6, modelContext, toLinkName, vxlanDeviceNameFor, type Family, type LinkName, type Mac, type ModelContext } from './model.js';
import type { DeviceInfo } from './observe.js';
import { PeerSync } from './converger.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, PeerDelta, ReconcileReport, UpdateOptions, Uplink } from './types.js';

/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;
/** The same over an IPv6 underlay, whose header is 20 bytes longer. */
export const VXLAN6_OVERHEAD = 70;
/** The start of every owner mark weft puts in a vxlan device's alias. */
export const OWNER_MARK = 'weft:';
/** weft:<network name> (a DNS label): one batch token. */
const OWNER = /^weft:[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** IPv6 needs links of at least 1280 bytes; the kernel turns IPv6 off on a smaller device. */
const IPV6_MIN_MTU = 1280;

function checkInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new DataplaneError(`${name} must be an integer in ${min}..${max}, got ${v}`, { step: 'settings' });
  }
  return v;
}

export function uplinkName(uplink: Uplink): LinkName {
  const name = toLinkName(uplink.name);
  if (!name) throw new DataplaneError(`unusable uplink name ${JSON.stringify(uplink.name)}`, { step: 'settings' });
  return name;
}

/** The own subnet must be of the backend's family: it becomes the device's address and the model's own subnet. */
export function checkOwnSubnet(ownSubnet: IpNet, family: Family): void {
  if (ownSubnet.family !== family) throw new DataplaneError(`own subnet ${ownSubnet} is not IPv${family}`, { step: 'reconcile' });
}

/** The backend's family, after checking that the addresses it is given are of it. */
export function familyOf(settings: BackendSettings, addresses: Record<string, IpAddr>): Family {
  const family = settings.family ?? 4;
  if (family !== 4 && family !== 6) throw new DataplaneError(`address family must be 4 or 6, got ${String(family)}`, { step: 'settings' });
  for (const [what, ip] of Object.entries(addresses)) {
    if (ip.family !== family) throw new DataplaneError(`${what} ${ip} is not an IPv${family} address`, { step: 'settings' });
  }
  if (settings.network && settings.network.family !== family) {
    throw new DataplaneError(`network ${settings.network} is not IPv${family}`, { step: 'settings' });
  }
  return family;
}

export class VxlanBackend implements Backend {
  readonly device: LinkName;
  readonly family: Family;
  private readonly uplinkDev: LinkName;
  private readonly vni: number;
  private readonly port: number;
  private readonly mtu: number;
  private readonly peers: PeerSync;
  private readonly channel: KernelChannel;
  private readonly drift: DriftSignal;
  private ctx: ModelContext | undefined;
  private mac: Mac | undefined;
  /** The own subnet whose /32 (/128) we last put on the device; undefined = check the device. */
  private addressFor: IpNet | undefined;
  /** The last call was a provisional pass (UpdateOptions.provisional) that the kernel took in full. */
  private afterProvisional = false;

  constructor(
    private readonly settings: BackendSettings,
    private readonly uplink: Uplink,
    private readonly publicIP: IpAddr,
    private readonly runner: IpRunner,
    private readonly log: Logger,
  ) {
    this.family = familyOf(settings, { 'public IP': publicIP, 'uplink address': uplink.address });
    const v6 = this.family === 6;
    this.vni = checkInt('VNI', settings.vni, 0, 0xffffff);
    this.port = checkInt('port', settings.port || DEFAULT_VXLAN_PORT, 1, 65535);
    const device = vxlanDeviceNameFor(this.family, this.vni);
    if (!device) throw new DataplaneError(`VNI ${this.vni} makes a device name longer than the kernel's 15 characters`, { step: 'settings' });
    this.device = device;
    this.mtu = checkInt('MTU', this.deviceMtu(), v6 ? IPV6_MIN_MTU : 68, 65535);
    this.uplinkDev = uplinkName(uplink);
    if (settings.owner !== undefined && !OWNER.test(settings.owner)) {
      throw new DataplaneError(`unusable device owner mark ${JSON.stringify(settings.owner)}`, { step: 'settings' });
    }
    this.channel = kernelChannelFor(runner, log);
    this.peers = new PeerSync(
      this.channel,
      { vxlanDev: this.device, uplinkDev: this.uplinkDev, uplinkScope: settings.network, family: this.family },
      log,
      new SkipReporter(log),
    );
    this.drift = new DriftSignal(log);
  }

  /**
   * The kernel's notifications, from the end of the first pass on: at start they would be
   * thousands of weft's own changes, read and judged while the kernel works (and `rtmon` would
   * take the core the bulk thread works on). The watch reads the kernel again when it starts
   * listening, so nothing that changed before is missed.
   */
  private watchKernel(): void {
    if (this.watching) return;
    this.watching = true;
    this.channel.watch?.((e) => this.kernelChanged(e));
  }
  private watching = false;

  onDrift(listener: (what: string) => void): () => void {
    return this.drift.subscribe(listener);
  }

  expectPeers(count: number): void {
    if (PeerSync.isBulkSize(count)) this.channel.prepareBulk?.();
  }

  /**
   * A kernel notification. The device deleted, down, resized or re-addressed by someone else
   * makes the next reconcile check the device first; entries are judged by the converger.
   */
  private kernelChanged(e: KernelEvent): void {
    if (e.kind === 'link' && e.dev === this.device && this.addressFor) {
      const why = e.action === 'del' ? 'deleted' : !e.up ? 'down' : e.mtu !== undefined && e.mtu !== this.mtu ? `MTU ${e.mtu}` : undefined;
      if (why) {
        this.addressFor = undefined;
        this.drift.raise(`device ${this.device} ${why}`);
      }
    }
    if (e.kind === 'addr' && e.dev === this.device && e.ip.family === this.family && this.addressFor) {
      const own = e.ip.equals(this.addressFor.network) && e.prefix === (this.family === 6 ? 128 : 32);
      const linkLocal = e.ip.family === 6 && isLinkLocal6(e.ip);
      if ((e.action === 'del' && own) || (e.action === 'new' && !own && !linkLocal)) {
        this.addressFor = undefined;
        this.drift.raise(`address ${e.ip}/${e.prefix} on ${this.device}`);
      }
    }
    const what = describeDrift(this.peers.converger.noteKernelEvent(e));
    if (what) this.drift.raise(what);
  }

  /**
   * The underlay MTU (the Network's backend.mtu, flanneld's meaning, else the uplink's) less
   * the encapsulation: 50 bytes, as flanneld, or 70 over IPv6, whose header is 20 bytes
   * longer (flanneld takes 50 there too, which fragments full-size packets). The kernel
   * refuses an IPv6 vxlan device larger than its uplink carries: a configured MTU above the
   * uplink's is capped there, saying so.
   */
  private deviceMtu(): number {
    if (this.family === 4) return (this.settings.mtu ?? this.uplink.mtu) - VXLAN_OVERHEAD;
    const underlay = this.settings.mtu ?? this.uplink.mtu;
    if (underlay <= this.uplink.mtu) return underlay - VXLAN6_OVERHEAD;
    this.log.warn('the configured MTU is above the IPv6 uplink\'s; using the uplink\'s', {
      device: this.device,
      configured: underlay,
      uplink: this.uplink.mtu,
    });
    return this.uplink.mtu - VXLAN6_OVERHEAD;
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    await this.ensureDevice();
    return { vtepMAC: this.mac!, mtu: this.mtu };
  }

  async update(ownSubnet: IpNet, delta: PeerDelta, opts: UpdateOptions = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    checkOwnSubnet(ownSubnet, this.family);
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, vxlanDev: this.device, ownSubnet });
    }
    // The model first: a device check that throws must not lose the change. A bulk delta (the
    // first pass at start) is modelled chunk by chunk instead, beside the kernel's work; if the
    // device check throws, the reconcile loop hands the same delta over again.
    const bulk = PeerSync.isBulk(delta) || opts.more !== undefined;
    if (!bulk) this.peers.model(this.ctx, delta);
    let full = opts.resync === true || !this.addressFor || !this.addressFor.equals(ownSubnet);
    if (full) {
      const { info, created } = await this.ensureDevice();
      // A provisional own subnet is not ours yet: its address goes on once it is (routes do
      // not need it: they are onlink).
      if (!opts.provisional) await this.ensureAddress(ownSubnet, info);
      // The first call after a provisional pass only adds the address: the entries are as that
      // pass left them, and the kernel watch, which starts after this call, reads them again.
      if (!opts.provisional && this.afterProvisional && !created && opts.resync !== true) full = false;
    }
    let outcome;
    try {
      outcome = bulk ? await this.peers.convergeBulk(this.ctx, delta, full, t0, opts.more) : await this.peers.converge(full, t0);
    } finally {
      // Not after a provisional pass: the watch's start reads the kernel again, which would
      // hold up the pass that follows at once when the lease is ours.
      if (!opts.provisional) this.watchKernel();
    }
    const { failures, report } = outcome;
    this.afterProvisional = opts.provisional === true && failures === 0;
    // A refused operation may mean the device is gone: check it on the next call.
    if (failures > 0) this.addressFor = undefined;
    return { ...report, vtepMAC: this.mac! };
  }

  reconcile(ownSubnet: IpNet, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    return this.update(ownSubnet, this.peers.deltaTo(peers), opts);
  }

  private readDevice(): Promise<DeviceInfo | undefined> {
    return this.channel.readDevice(this.device, this.family);
  }

  /** Why an existing device cannot be adopted, or undefined when it can. */
  incompatibility(d: DeviceInfo): string | undefined {
    if (d.kind !== 'vxlan') return `kind ${d.kind ?? 'unknown'}, not vxlan`;
    if (d.vni !== this.vni) return `VNI ${d.vni}, want ${this.vni}`;
    if (!d.local || !d.local.equals(this.publicIP)) return `local ${d.local?.toString() ?? 'unset'}, want ${this.publicIP}`;
    if (d.link !== this.uplinkDev) return `dev ${d.link ?? 'unset'}, want ${this.uplinkDev}`;
    if (d.port !== this.port) return `port ${d.port}, want ${this.port}`;
    if (d.gbp !== this.settings.gbp) return `gbp ${d.gbp}, want ${this.settings.gbp}`;
    return undefined;
  }

  /**
   * Adopts a compatible device as it is (same MAC: restarts are hitless), or creates one,
   * replacing an incompatible device. A newly created device has no routes, neighbours or
   * FDB entries: the caller's full reconcile restores them.
   */
  private async ensureDevice(): Promise<{ info: DeviceInfo; created: boolean }> {
    const found = await this.readDevice();
    const owner = this.settings.owner;
    if (found && owner && found.alias?.startsWith(OWNER_MARK) && found.alias !== owner) {
      // Two vxlan Networks with one VNI on this host share flannel.<VNI>: adopting it (or
      // replacing it) would delete the other agent's address, routes, neighbours and FDB
      // entries at every resync. Refuse, and leave everything as it is.
      throw new DataplaneError(
        `${this.device} belongs to another network's agent on this host (alias ${found.alias}; it uses VNI ${this.vni} too): ` +
          'not adopting it; give each vxlan Network its own VNI',
        { device: this.device, step: 'adopt device' },
      );
    }
    const why = found ? this.incompatibility(found) : 'missing';
    if (found && !why) {
      // flanneld's Learning option leaves learning on: turned off in place, so the MAC (which
      // every peer's FDB and neighbour entries name) stays and the migration is hitless.
      if (found.learning !== false) {
        await this.runBatch('turn learning off', [`link set ${this.device} type vxlan nolearning`]);
        this.log.info('adopted a vxlan device with learning on; turned learning off, MAC kept', { device: this.device, mac: found.mac });
      }
      const adjust: DeviceChange[] = [];
      if (found.mtu !== this.mtu || !found.up) adjust.push({ kind: 'mtu-up', mtu: this.mtu });
      // Mark an unmarked device (flanneld's, or an older weft's) as ours from now on.
      if (owner && found.alias !== owner) adjust.push({ kind: 'alias', alias: owner });
      await this.channel.changeDevice('adjust device', this.device, adjust);
      if (this.family === 6) await this.refuseRouterAdvertisements();
      if (this.mac && this.mac !== found.mac) this.log.warn('vxlan device MAC changed', { device: this.device, from: this.mac, to: found.mac });
      this.mac = found.mac;
      return { info: found, created: false };
    }
    const changes: DeviceChange[] = [];
    if (found) {
      this.log.warn('replacing incompatible vxlan device', { device: this.device, reason: why });
      changes.push({ kind: 'delete' });
    } else if (this.mac) {
      this.log.warn('vxlan device disappeared; recreating it', { device: this.device });
    }
    changes.push({ kind: 'create-vxlan', vni: this.vni, local: this.publicIP, uplink: this.uplinkDev, port: this.port, gbp: this.settings.gbp, mtu: this.mtu });
    if (owner) changes.push({ kind: 'alias', alias: owner });
    await this.channel.changeDevice('create device', this.device, changes);
    const made = await this.readDevice();
    if (!made) throw new DataplaneError(`${this.device} is missing right after creating it`, { device: this.device, step: 'create device' });
    if (this.family === 6) await this.refuseRouterAdvertisements();
    this.log.info('created vxlan device', { device: this.device, vni: this.vni, mac: made.mac, mtu: this.mtu, port: this.port, local: this.publicIP.toString() });
    this.mac = made.mac;
    return { info: made, created: true };
  }

  /**
   * `<own subnet network>/32` is the only IPv4 address on the device (the peers' onlink routes
   * do not need it, so a provisional pass, before the lease, programs them without it);
   * for IPv6 `/128` is the only one besides the kernel's link-local address, added without
   * duplicate address detection so that it is usable at once.
   */
  private async ensureAddress(ownSubnet: IpNet, info: DeviceInfo): Promise<void> {
    const want = ownSubnet.network;
    const host = this.family === 6 ? 128 : 32;
    const changes: DeviceChange[] = [];
    if (!info.addresses.some((a) => a.ip.equals(want) && a.prefix === host)) {
      changes.push({ kind: 'addr-replace', ip: want, prefix: host, nodad: this.family === 6 });
    }
    for (const a of info.addresses) {
      if (!(a.ip.equals(want) && a.prefix === host)) changes.push({ kind: 'addr-del', ip: a.ip, prefix: a.prefix });
    }
    await this.channel.changeDevice('set device address', this.device, changes);
    this.addressFor = ownSubnet;
  }

  /**
   * accept_ra=0 on the IPv6 device, as flanneld: a router advertisement arriving over the
   * overlay must not give the host addresses or a default route through it. Written in the
   * runner's namespace (the agent's own when it has none). Device names are validated link
   * names (no "/"), so the path names one file under /proc/sys/net/ipv6/conf.
   */
  private async refuseRouterAdvertisements(): Promise<void> {
    const path = `/proc/sys/net/ipv6/conf/${this.device}/accept_ra`;
    try {
      if (this.runner.netns) {
        const r = await execa('ip', ['netns', 'exec', this.runner.netns, 'tee', path], { input: '0\n', reject: false });
        if (r.exitCode !== 0) throw new Error(String(r.stderr).trim());
      } else {
        await writeFile(path, '0\n');
      }
    } catch (err) {
      throw new DataplaneError(`cannot turn router advertisements off on ${this.device}`, { device: this.device, step: 'accept_ra', errors: [(err as Error).message] });
    }
  }

  private async runBatch(step: string, lines: string[]): Promise<void> {
    const r = await this.runner.batch('ip', lines);
    if (r.failures > 0) throw new DataplaneError(`${step} failed for ${this.device}`, { device: this.device, step, errors: r.errors });
  }
}
