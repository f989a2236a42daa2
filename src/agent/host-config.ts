// What the agent leaves on the host for others besides the overlay itself: subnet.env, which
// the container runtime's CNI plugin reads, and with --ip-masq the masquerade rules for
// traffic leaving the network. Both are rewritten only when their content changes.
import type { LeaseKey } from '../api/lease.js';
import type { NetworkConfig } from '../api/network.js';
import { describeMasqChange, masqChainFor, MasqKeeper, type MasqChange, type MasqTarget } from '../dataplane/masq.js';
import type { Logger } from '../log.js';
import { formatSubnetEnv, writeSubnetEnv } from './subnet-env.js';
import type { WarnOnce } from './timers.js';

/** The masquerade rules' owner; a test hands in a keeper for its own namespace. */
export interface MasqSyncer {
  readonly chain: string;
  sync(target: MasqTarget | undefined): Promise<MasqChange>;
}

export class HostConfig {
  private readonly masq: MasqSyncer;

  constructor(
    private readonly opts: { network: string; subnetFile: string; ipMasq: boolean },
    private readonly log: Logger,
    private readonly once: WarnOnce,
    masq?: MasqSyncer,
  ) {
    this.masq = masq ?? new MasqKeeper(masqChainFor(opts.network));
  }

  /** subnet.env for the subnets held; true when the file was (re)written. */
  writeEnv(config: NetworkConfig, subnets: LeaseKey, mtu: number): boolean {
    const content = formatSubnetEnv({
      ...(config.ipv4 && subnets.ipv4 ? { network: config.ipv4.network, subnet: subnets.ipv4 } : {}),
      ...(config.ipv6 && subnets.ipv6 ? { ipv6Network: config.ipv6.network, ipv6Subnet: subnets.ipv6 } : {}),
      mtu,
      ipMasq: this.opts.ipMasq,
    });
    const written = writeSubnetEnv(this.opts.subnetFile, content);
    if (written) this.log.info('wrote subnet file', { path: this.opts.subnetFile });
    return written;
  }

  /**
   * --ip-masq: keeps the masquerade rules for the network and our subnet (re-checked at every
   * resync, rewritten when our subnet changes); without the flag, removes any an earlier run
   * left. A failure is said once and retried at the next resync.
   */
  async applyMasq(config: NetworkConfig, subnets: LeaseKey): Promise<void> {
    // IPv4 only: an IPv6 network's container traffic is not masqueraded (said once).
    if (this.opts.ipMasq && config.ipv6) this.once.warn('masq-ipv6', '--ip-masq covers IPv4 only: IPv6 container traffic is not masqueraded');
    const network = config.ipv4?.network;
    const subnet = subnets.ipv4;
    const target = this.opts.ipMasq && network && subnet ? { network, subnet } : undefined;
    try {
      const change = await this.masq.sync(target);
      this.once.forget('masq-failed');
      if (change !== 'unchanged') this.log.info(describeMasqChange(change), { chain: this.masq.chain, ...(target ? { subnet: target.subnet.toString() } : {}) });
    } catch (err) {
      const what = target ? 'install the --ip-masq rules' : 'check for --ip-masq rules left by an earlier run';
      this.once.warn('masq-failed', `cannot ${what} (retrying at each resync): ${(err as Error).message}`);
    }
  }
}
