// The host-gw backend: one route per peer subnet via the peer's public IP on the uplink. No
// device of its own; weft's routes are told apart from the operator's by their protocol.
import type { IpNet } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { kernelChannelFor } from './channel.js';
import { describeDrift, DriftSignal } from './drift.js';
import type { IpRunner } from './ipcmd.js';
import { modelContext, type Family, type LinkName, type ModelContext } from './model.js';
import { PeerSync } from './converger.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, PeerDelta, ReconcileReport, Uplink } from './types.js';
import { checkOwnSubnet, familyOf, uplinkName } from './vxlan.js';

export class HostGwBackend implements Backend {
  private readonly uplinkDev: LinkName;
  private readonly family: Family;
  private readonly peers: PeerSync;
  private readonly drift: DriftSignal;
  private trusted = false;
  private ctx: ModelContext | undefined;

  constructor(
    private readonly settings: BackendSettings,
    private readonly uplink: Uplink,
    runner: IpRunner,
    log: Logger,
  ) {
    this.uplinkDev = uplinkName(uplink);
    this.family = familyOf(settings, { 'uplink address': uplink.address });
    const channel = kernelChannelFor(runner, log);
    this.peers = new PeerSync(channel, { uplinkDev: this.uplinkDev, uplinkScope: settings.network, family: this.family }, log, new SkipReporter(log));
    this.drift = new DriftSignal(log);
    channel.watch?.((e) => {
      const what = describeDrift(this.peers.converger.noteKernelEvent(e));
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

  async update(ownSubnet: IpNet, delta: PeerDelta, opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    checkOwnSubnet(ownSubnet, this.family);
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, ownSubnet });
    }
    this.peers.model(this.ctx, delta);
    const { failures, report } = await this.peers.converge(opts.resync === true || !this.trusted, t0);
    this.trusted = failures === 0;
    return report;
  }

  reconcile(ownSubnet: IpNet, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    return this.update(ownSubnet, this.peers.deltaTo(peers), opts);
  }
}
