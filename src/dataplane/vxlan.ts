// The vxlan backend: device flannel.<VNI>, its /32 address, and per peer a permanent
// neighbour, an FDB entry and an onlink route (or, with directRouting, a plain route via the
// peer's public IP when it is on-link).
import type { Cidr, Ipv4 } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { Converger } from './converger.js';
import { DataplaneError } from './errors.js';
import type { IpRunner } from './ipcmd.js';
import { DesiredTracker } from './desired.js';
import { modelContext, toLinkName, vxlanDeviceName, type LinkName, type Mac, type ModelContext } from './model.js';
import { parseDevice, type DeviceInfo } from './observe.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, ReconcileReport, Uplink } from './types.js';

/** The kernel's vxlan port when none is configured (Linux's historical default, as flannel). */
export const DEFAULT_VXLAN_PORT = 8472;
/** Outer IPv4 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD = 50;

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

export class VxlanBackend implements Backend {
  readonly device: LinkName;
  private readonly uplinkDev: LinkName;
  private readonly vni: number;
  private readonly port: number;
  private readonly mtu: number;
  private readonly converger: Converger;
  private readonly skips: SkipReporter;
  private readonly desired = new DesiredTracker();
  private ctx: ModelContext | undefined;
  private mac: Mac | undefined;
  /** The own subnet whose /32 we last put on the device; undefined = check the device. */
  private addressFor: Cidr | undefined;

  constructor(
    private readonly settings: BackendSettings,
    private readonly uplink: Uplink,
    private readonly publicIP: Ipv4,
    private readonly runner: IpRunner,
    private readonly log: Logger,
  ) {
    this.vni = checkInt('VNI', settings.vni, 0, 0xffffff);
    this.port = checkInt('port', settings.port || DEFAULT_VXLAN_PORT, 1, 65535);
    this.mtu = checkInt('MTU', settings.mtu ?? uplink.mtu - VXLAN_OVERHEAD, 68, 65535);
    this.device = vxlanDeviceName(this.vni);
    this.uplinkDev = uplinkName(uplink);
    this.converger = new Converger(runner, { vxlanDev: this.device, uplinkDev: this.uplinkDev, uplinkScope: settings.network }, log);
    this.skips = new SkipReporter(log);
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    await this.ensureDevice();
    return { vtepMAC: this.mac!, mtu: this.mtu };
  }

  async reconcile(ownSubnet: Cidr, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    const full = opts.resync === true || !this.addressFor || !this.addressFor.equals(ownSubnet);
    if (full) {
      const info = await this.ensureDevice();
      await this.ensureAddress(ownSubnet, info);
    }
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, vxlanDev: this.device, ownSubnet });
    }
    const d = this.desired.update(this.ctx, peers, full);
    if (d.full) this.skips.report(d.skips as { key: string; reason: string }[]);
    else this.skips.update(d.skips);
    const r = await this.converger.converge(d.state, full, d.touched);
    // A refused operation may mean the device is gone: check it on the next call.
    if (r.failures > 0) this.addressFor = undefined;
    return {
      operations: r.operations,
      failures: r.failures,
      byKind: r.byKind,
      skipped: this.skips.count,
      peersProgrammed: Math.max(0, this.desired.modelled - r.unrouted),
      vtepMAC: this.mac!,
      ms: performance.now() - t0,
      kernelMs: r.kernelMs,
    };
  }

  private async readDevice(): Promise<DeviceInfo | undefined> {
    const r = await this.runner.run('ip', ['-details', '-json', 'addr', 'show', 'dev', this.device]);
    if (r.exitCode !== 0) {
      if (/does not exist/.test(r.stderr)) return undefined;
      throw new DataplaneError(`cannot read ${this.device}`, { device: this.device, step: 'read device', errors: [r.stderr.trim()] });
    }
    const info = parseDevice(JSON.parse(r.stdout || '[]') as unknown);
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
    const why = found ? this.incompatibility(found) : 'missing';
    if (found && !why) {
      if (found.mtu !== this.mtu || !found.up) {
        await this.runBatch('adjust device', [`link set ${this.device} mtu ${this.mtu} up`]);
      }
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
    await this.runBatch('create device', lines);
    const made = await this.readDevice();
    if (!made) throw new DataplaneError(`${this.device} is missing right after creating it`, { device: this.device, step: 'create device' });
    this.log.info('created vxlan device', { device: this.device, vni: this.vni, mac: made.mac, mtu: this.mtu, port: this.port });
    this.mac = made.mac;
    return made;
  }

  /** `<own subnet network>/32` is the only IPv4 address on the device (routes need it first). */
  private async ensureAddress(ownSubnet: Cidr, info: DeviceInfo): Promise<void> {
    const want = ownSubnet.network;
    const lines: string[] = [];
    if (!info.addresses.some((a) => a.ip.equals(want) && a.prefix === 32)) lines.push(`addr replace ${want.toString()}/32 dev ${this.device}`);
    for (const a of info.addresses) {
      if (!(a.ip.equals(want) && a.prefix === 32)) lines.push(`addr del ${a.ip.toString()}/${a.prefix} dev ${this.device}`);
    }
    if (lines.length > 0) await this.runBatch('set device address', lines);
    this.addressFor = ownSubnet;
  }

  private async runBatch(step: string, lines: string[]): Promise<void> {
    const r = await this.runner.batch('ip', lines);
    if (r.failures > 0) throw new DataplaneError(`${step} failed for ${this.device}`, { device: this.device, step, errors: r.errors });
  }
}
