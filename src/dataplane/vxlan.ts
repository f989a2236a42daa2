// The vxlan backend: device flannel.<VNI>, its /32 address, and per peer a permanent
// neighbour, an FDB entry and an onlink route (or, with directRouting, a plain route via the
// peer's public IP when it is on-link).
//
// The IPv6 backend is the same with flanneld's IPv6 names and sizes: device flannel-v6.<VNI>
// over the uplink's IPv6 address, address <own IPv6 subnet>/128, 70 bytes of encapsulation.
import type { IpAddr, IpNet } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { Converger } from './converger.js';
import { DataplaneError } from './errors.js';
import type { IpRunner } from './ipcmd.js';
import { DesiredTracker } from './desired.js';
import { modelContext, toLinkName, vxlanDeviceNameFor, type Family, type LinkName, type Mac, type ModelContext } from './model.js';
import { parseDevice, type DeviceInfo } from './observe.js';
import { syncPeers } from './peer-sync.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, ReconcileReport, Uplink } from './types.js';

/** The kernel's vxlan port when none is configured (Linux's historical default, as flannel). */
export const DEFAULT_VXLAN_PORT = 8472;
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
  private readonly converger: Converger;
  private readonly skips: SkipReporter;
  private readonly desired = new DesiredTracker();
  private ctx: ModelContext | undefined;
  private mac: Mac | undefined;
  /** The own subnet whose /32 (/128) we last put on the device; undefined = check the device. */
  private addressFor: IpNet | undefined;

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
    this.converger = new Converger(
      runner,
      { vxlanDev: this.device, uplinkDev: this.uplinkDev, uplinkScope: settings.network, family: this.family },
      log,
    );
    this.skips = new SkipReporter(log);
  }

  /**
   * The Network's MTU, else the uplink's less the encapsulation. A dual-stack Network has one
   * MTU for both devices, and the kernel refuses a vxlan device larger than its uplink allows
   * (1430 on a 1500 IPv6 uplink): the IPv6 device takes the smaller of the two, saying so.
   */
  private deviceMtu(): number {
    if (this.family === 4) return this.settings.mtu ?? this.uplink.mtu - VXLAN_OVERHEAD;
    const limit = this.uplink.mtu - VXLAN6_OVERHEAD;
    const wanted = this.settings.mtu ?? limit;
    if (wanted <= limit) return wanted;
    this.log.warn('the configured MTU does not fit the IPv6 underlay; using the largest that does', {
      device: this.device,
      configured: wanted,
      mtu: limit,
    });
    return limit;
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    await this.ensureDevice();
    return { vtepMAC: this.mac!, mtu: this.mtu };
  }

  async reconcile(ownSubnet: IpNet, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    checkOwnSubnet(ownSubnet, this.family);
    const full = opts.resync === true || !this.addressFor || !this.addressFor.equals(ownSubnet);
    if (full) {
      const info = await this.ensureDevice();
      await this.ensureAddress(ownSubnet, info);
    }
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, vxlanDev: this.device, ownSubnet });
    }
    const { result, report } = await syncPeers({ desired: this.desired, skips: this.skips, converger: this.converger }, this.ctx, peers, full, t0);
    // A refused operation may mean the device is gone: check it on the next call.
    if (result.failures > 0) this.addressFor = undefined;
    return { ...report, vtepMAC: this.mac! };
  }

  private async readDevice(): Promise<DeviceInfo | undefined> {
    const r = await this.runner.run('ip', ['-details', '-json', 'addr', 'show', 'dev', this.device]);
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return undefined;
      throw new DataplaneError(`cannot read ${this.device}`, { device: this.device, step: 'read device', errors: [r.stderr.trim()] });
    }
    const info = parseDevice(JSON.parse(r.stdout || '[]') as unknown, this.family);
    if (!info) throw new DataplaneError(`cannot parse the description of ${this.device}`, { device: this.device, step: 'read device' });
    return info;
  }

  /** Why an existing device cannot be adopted, or undefined when it can. */
  incompatibility(d: DeviceInfo): string | undefined {
    if (d.kind !== 'vxlan') return `kind ${d.kind ?? 'unknown'}, not vxlan`;
    if (d.vni !== this.vni) return `VNI ${d.vni}, want ${this.vni}`;
    if (!d.local || !d.local.equals(this.publicIP)) return `local ${d.local?.toString() ?? 'unset'}, want ${this.publicIP}`;
    if (d.link !== this.uplinkDev) return `dev ${d.link ?? 'unset'}, want ${this.uplinkDev}`;
    if (d.port !== this.port) return `port ${d.port}, want ${this.port}`;
    if (d.learning !== false) return 'learning is on';
    if (d.gbp !== this.settings.gbp) return `gbp ${d.gbp}, want ${this.settings.gbp}`;
    return undefined;
  }

  /**
   * Adopts a compatible device as it is (same MAC: restarts are hitless), or creates one,
   * replacing an incompatible device. A newly created device has no routes, neighbours or
   * FDB entries: the caller's full reconcile restores them.
   */
  private async ensureDevice(): Promise<DeviceInfo> {
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
      const adjust: string[] = [];
      if (found.mtu !== this.mtu || !found.up) adjust.push(`link set ${this.device} mtu ${this.mtu} up`);
      // Mark an unmarked device (flanneld's, or an older weft's) as ours from now on.
      if (owner && found.alias !== owner) adjust.push(`link set dev ${this.device} alias ${owner}`);
      if (adjust.length > 0) await this.runBatch('adjust device', adjust);
      if (this.mac && this.mac !== found.mac) this.log.warn('vxlan device MAC changed', { device: this.device, from: this.mac, to: found.mac });
      this.mac = found.mac;
      return found;
    }
    const lines: string[] = [];
    if (found) {
      this.log.warn('replacing incompatible vxlan device', { device: this.device, reason: why });
      lines.push(`link del ${this.device}`);
    } else if (this.mac) {
      this.log.warn('vxlan device disappeared; recreating it', { device: this.device });
    }
    const create = [
      'link add', this.device, 'type vxlan id', String(this.vni), 'local', this.publicIP.toString(),
      'dev', this.uplinkDev, 'nolearning dstport', String(this.port),
    ];
    if (this.settings.gbp) create.push('gbp');
    lines.push(create.join(' '), `link set ${this.device} mtu ${this.mtu} up`);
    if (owner) lines.push(`link set dev ${this.device} alias ${owner}`);
    await this.runBatch('create device', lines);
    const made = await this.readDevice();
    if (!made) throw new DataplaneError(`${this.device} is missing right after creating it`, { device: this.device, step: 'create device' });
    this.log.info('created vxlan device', { device: this.device, vni: this.vni, mac: made.mac, mtu: this.mtu, port: this.port, local: this.publicIP.toString() });
    this.mac = made.mac;
    return made;
  }

  /**
   * `<own subnet network>/32` is the only IPv4 address on the device (routes need it first);
   * for IPv6 `/128` is the only one besides the kernel's link-local address, added without
   * duplicate address detection so that it is usable at once.
   */
  private async ensureAddress(ownSubnet: IpNet, info: DeviceInfo): Promise<void> {
    const want = ownSubnet.network;
    const host = this.family === 6 ? 128 : 32;
    const lines: string[] = [];
    if (!info.addresses.some((a) => a.ip.equals(want) && a.prefix === host)) {
      lines.push(`addr replace ${want.toString()}/${host} dev ${this.device}${this.family === 6 ? ' nodad' : ''}`);
    }
    for (const a of info.addresses) {
      if (!(a.ip.equals(want) && a.prefix === host)) lines.push(`addr del ${a.ip.toString()}/${a.prefix} dev ${this.device}`);
    }
    if (lines.length > 0) await this.runBatch('set device address', lines);
    this.addressFor = ownSubnet;
  }

  private async runBatch(step: string, lines: string[]): Promise<void> {
    const r = await this.runner.batch('ip', lines);
    if (r.failures > 0) throw new DataplaneError(`${step} failed for ${this.device}`, { device: this.device, step, errors: r.errors });
  }
}
