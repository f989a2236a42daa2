// The host-gw backend: one route per peer subnet via the peer's public IP on the uplink. No
// device of its own; weft's routes are told apart from the operator's by their protocol.
import type { IpNet } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { kernelChannelFor, type KernelChannel } from './channel.js';
import { Converger } from './converger.js';
import { describeDrift, DriftSignal } from './drift.js';
import type { IpRunner } from './ipcmd.js';
import { DesiredTracker } from './desired.js';
import { modelContext, type Family, type LinkName, type ModelContext } from './model.js';
import { syncPeers } from './peer-sync.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, ReconcileReport, Uplink } from './types.js';
import { checkOwnSubnet, familyOf, uplinkName } from './vxlan.js';

export class HostGwBackend implements Backend {
  private readonly uplinkDev: LinkName;
  private readonly family: Family;
  private readonly converger: Converger;
  private readonly skips: SkipReporter;
  private trusted = false;
  private readonly desired = new DesiredTracker();
  private ctx: ModelContext | undefined;
  private readonly channel: KernelChannel;
  private readonly drift: DriftSignal;

  constructor(
    private readonly settings: BackendSettings,
    private readonly uplink: Uplink,
    runner: IpRunner,
    log: Logger,
  ) {
    this.uplinkDev = uplinkName(uplink);
    this.family = familyOf(settings, { 'uplink address': uplink.address });
    this.channel = kernelChannelFor(runner, log);
    this.converger = new Converger(this.channel, { uplinkDev: this.uplinkDev, uplinkScope: settings.network, family: this.family }, log);
    this.skips = new SkipReporter(log);
    this.drift = new DriftSignal(log);
    this.channel.watch?.((e) => {
      const what = describeDrift(this.converger.noteKernelEvent(e));
      if (what) this.drift.raise(what);
    });
  }

  onDrift(listener: (what: string) => void): () => void {
    return this.drift.subscribe(listener);
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    // Packets leave unencapsulated: the uplink's MTU is the overlay's.
    return { mtu: this.uplink.mtu };
  }

  async reconcile(ownSubnet: IpNet, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    checkOwnSubnet(ownSubnet, this.family);
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, ownSubnet });
    }
    const full = opts.resync === true || !this.trusted;
    const { result, report } = await syncPeers({ desired: this.desired, skips: this.skips, converger: this.converger }, this.ctx, peers, full, t0);
    this.trusted = result.failures === 0;
    return report;
  }
}
