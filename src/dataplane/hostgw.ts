// The host-gw backend: one route per peer subnet via the peer's public IP on the uplink. No
// device of its own; weft's routes are told apart from the operator's by their protocol.
import type { IpNet } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { kernelChannelFor, type KernelChannel } from './channel.js';
import { describeDrift, DriftSignal } from './drift.js';
import type { IpRunner } from './ipcmd.js';
import { modelContext, type Family, type LinkName, type ModelContext } from './model.js';
import { PeerSync } from './converger.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, PeerDelta, ReconcileReport, UpdateOptions, Uplink } from './types.js';
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
    this.channel = channel;
  }

  /** The kernel's notifications, from the end of the first pass on (as VxlanBackend.watchKernel). */
  private watchKernel(): void {
    if (this.watching) return;
    this.watching = true;
    this.channel.watch?.((e) => {
      const what = describeDrift(this.peers.converger.noteKernelEvent(e));
      if (what) this.drift.raise(what);
    });
  }
  private watching = false;
  private readonly channel: KernelChannel;

  onDrift(listener: (what: string) => void): () => void {
    return this.drift.subscribe(listener);
  }

  expectPeers(count: number): void {
    if (PeerSync.isBulkSize(count)) this.channel.prepareBulk?.();
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    // Packets leave unencapsulated: the uplink's MTU is the overlay's.
    return { mtu: this.uplink.mtu };
  }

  async update(ownSubnet: IpNet, delta: PeerDelta, opts: UpdateOptions = {}): Promise<ReconcileReport> {
    const t0 = performance.now();
    checkOwnSubnet(ownSubnet, this.family);
    if (!this.ctx || !this.ctx.ownSubnet.equals(ownSubnet)) {
      this.ctx = modelContext({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, ownSubnet });
    }
    const resync = opts.resync === true || !this.trusted;
    let outcome;
    try {
      if (PeerSync.isBulk(delta) || opts.more) outcome = await this.peers.convergeBulk(this.ctx, delta, resync, t0, opts.more);
      else {
        this.peers.model(this.ctx, delta);
        outcome = await this.peers.converge(resync, t0);
      }
    } finally {
      // After a provisional pass the lease's own pass follows at once; the watch's start (which
      // reads the kernel again) waits for it, as in VxlanBackend.
      if (!opts.provisional) this.watchKernel();
    }
    const { failures, report } = outcome;
    this.trusted = failures === 0;
    return report;
  }

  reconcile(ownSubnet: IpNet, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    return this.update(ownSubnet, this.peers.deltaTo(peers), opts);
  }
}
