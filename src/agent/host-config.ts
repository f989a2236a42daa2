// What the agent leaves on the host for others besides the overlay itself: subnet.env, which
// the container runtime's CNI plugin reads, and the iptables rules flanneld keeps (--ip-masq's
// masquerade rules for traffic leaving the network, --iptables-forward-rules' FORWARD ACCEPTs),
// for IPv4 and IPv6 as the network has them. Each is rewritten only when its content changes.
import type { IpNet } from '../alloc/cidr.js';
import type { LeaseKey } from '../api/lease.js';
import type { NetworkConfig } from '../api/network.js';
import { describeMasqChange, HostRules, runProgram, type HostRulesTarget, type MasqChange } from '../dataplane/masq.js';
import { nftGenerationReader } from '../dataplane/nft-generation.js';
import type { Logger } from '../log.js';
import { formatSubnetEnv, writeSubnetEnv } from './subnet-env.js';
import type { WarnOnce } from './timers.js';

/** The iptables rules' owner; a test hands in one for its own namespace, or a fake. */
export interface RuleSyncer {
  sync(target: HostRulesTarget): Promise<{ what: string; chain: string; change?: MasqChange; error?: Error }[]>;
}

export interface HostConfigOptions {
  network: string;
  subnetFile: string;
  ipMasq: boolean;
  ipMasqRandomFully: boolean;
  forwardRules: boolean;
  iptablesResyncMs: number;
  /**
   * How often the iptables rules are read even when nftables says nothing changed (the
   * --resync-interval; see HostRules).
   */
  resyncIntervalMs?: number;
}

export class HostConfig {
  private readonly rules: RuleSyncer;

  constructor(
    private readonly opts: HostConfigOptions,
    private readonly log: Logger,
    private readonly once: WarnOnce,
    rules?: RuleSyncer,
  ) {
    // Checks every --iptables-resync as flanneld does, but starts iptables-save only when the
    // nftables ruleset changed since the last check that found the rules in place, or once per
    // --resync-interval.
    this.rules =
      rules ??
      new HostRules(opts.network, runProgram, {
        generation: nftGenerationReader(),
        ...(opts.resyncIntervalMs !== undefined ? { fullCheckMs: opts.resyncIntervalMs } : {}),
      });
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
   * --ip-masq and --iptables-forward-rules, each for IPv4 and IPv6 as the network has them:
   * keeps the rules for the network and our subnet (re-checked every --iptables-resync,
   * rewritten when our subnet changes); with a flag off, removes any an earlier run left.
   * A failure is said once per chain and retried at the next check.
   */
  async applyRules(config: NetworkConfig, subnets: LeaseKey): Promise<void> {
    const stack = (network: IpNet | undefined, subnet: IpNet | undefined) => (network && subnet ? { network, subnet } : undefined);
    const v4 = stack(config.ipv4?.network, subnets.ipv4);
    const v6 = stack(config.ipv6?.network, subnets.ipv6);
    const results = await this.rules.sync({
      ipMasq: this.opts.ipMasq,
      randomFully: this.opts.ipMasqRandomFully,
      forward: this.opts.forwardRules,
      ...(v4 ? { ipv4: v4 } : {}),
      ...(v6 ? { ipv6: v6 } : {}),
    });
    for (const r of results) {
      if (r.error) {
        this.once.warn(`rules-failed:${r.what}`, `cannot keep ${r.what} (retrying every ${this.opts.iptablesResyncMs / 1000}s): ${r.error.message}`);
        continue;
      }
      this.once.forget(`rules-failed:${r.what}`);
      if (r.change && r.change !== 'unchanged') this.log.info(describeMasqChange(r.change, r.what), { chain: r.chain });
    }
  }
}
