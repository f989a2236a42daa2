// The host-gw backend: one route per peer subnet via the peer's public IP on the uplink. No
// device of its own; weft's routes are told apart from the operator's by their protocol.
import type { Cidr } from '../alloc/cidr.js';
import type { Logger } from '../log.js';
import { Converger } from './converger.js';
import type { IpRunner } from './ipcmd.js';
import { desiredState, type LinkName } from './model.js';
import { SkipReporter } from './skips.js';
import type { Backend, BackendSettings, Peer, ReconcileReport, Uplink } from './types.js';
import { uplinkName } from './vxlan.js';

export class HostGwBackend implements Backend {
  private readonly uplinkDev: LinkName;
  private readonly converger: Converger;
  private readonly skips: SkipReporter;
  private trusted = false;

  constructor(
    private readonly settings: BackendSettings,
    private readonly uplink: Uplink,
    runner: IpRunner,
    log: Logger,
  ) {
    this.uplinkDev = uplinkName(uplink);
    this.converger = new Converger(runner, { uplinkDev: this.uplinkDev, uplinkScope: settings.network }, log);
    this.skips = new SkipReporter(log);
  }

  async prepare(): Promise<{ vtepMAC?: string; mtu: number }> {
    // Packets leave unencapsulated: the uplink's MTU is the overlay's.
    return { mtu: this.uplink.mtu };
  }

  async reconcile(ownSubnet: Cidr, peers: Peer[], opts: { resync?: boolean } = {}): Promise<ReconcileReport> {
    const desired = desiredState({ settings: this.settings, uplink: this.uplink, uplinkDev: this.uplinkDev, ownSubnet, peers });
    this.skips.report(desired.skipped);
    const r = await this.converger.converge(desired.state, opts.resync === true || !this.trusted);
    this.trusted = r.failures === 0;
    return { operations: r.operations, failures: r.failures };
  }
}
