// Reading the Network this agent serves, at start and again at every resync tick
// (level-triggered, one read): a new lease TTL or subnet range applies live; anything that
// shapes the kernel or the subnets asks for a restart (config-change.ts decides which).
import type { LeaseKey } from '../api/lease.js';
import { resolveNetwork, type NetworkConfig } from '../api/network.js';
import { networkSafetyProblems } from '../api/network-safety.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { compareConfigs, type ConfigChange } from './config-change.js';
import type { WarnOnce } from './timers.js';

export class ConfigReloader {
  /** Why the stored config is refused (shown in readiness), while it is. */
  problem: string | undefined;

  constructor(
    private readonly store: Pick<Store, 'readNetwork' | 'layout'>,
    private readonly network: string,
    private readonly log: Logger,
    private readonly once: WarnOnce,
  ) {}

  /** The network's config, or undefined (said once per problem) while it is missing or unusable. */
  async read(): Promise<NetworkConfig | undefined> {
    const record = await this.store.readNetwork(this.network);
    const key = this.store.layout.configKey(this.network);
    if (!record) return this.once.warn('config-missing', `no network config at ${key}; waiting (apply a Network named ${this.network})`);
    if (!record.spec.ok) return this.once.warn(`config-bad-${record.kv.modRevision}`, `network config at ${key} is unusable: ${record.spec.error}`);
    const { config, problems } = resolveNetwork(this.network, record.spec.value);
    if (!config) {
      return this.once.warn(
        `config-bad-${record.kv.modRevision}`,
        `network config at ${key} is invalid: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
      );
    }
    // weft's own refusals, beyond flanneld's rules (api/network-safety.ts): a config flanneld
    // would run with, but that would hurt this host (a range over the default route, a device
    // name the kernel refuses). Wait, not ready, as for an invalid config.
    const unsafe = networkSafetyProblems(config);
    if (unsafe.length > 0) {
      this.problem = unsafe.map((p) => `${p.field}: ${p.message}`).join('; ');
      return this.once.warn(`config-unsafe-${record.kv.modRevision}`, `network config at ${key} is refused: ${this.problem}`);
    }
    this.problem = undefined;
    return config;
  }

  /**
   * Reads the config again and compares it with the one running. Returns the change when live
   * fields changed (logged), undefined otherwise; restart-only changes are said once. Throws
   * what the read throws (the caller counts an unavailable etcd and tries at the next tick).
   */
  async reload(current: NetworkConfig, held: LeaseKey | undefined): Promise<ConfigChange | undefined> {
    const wanted = await this.read();
    if (!wanted) return undefined;
    const change = compareConfigs(current, wanted, held);
    if (change.needsRestart.length > 0) {
      const shape = [wanted.ipv4, wanted.ipv6].map((s) => (s ? `${s.network}/${s.subnetLen}` : '-')).join(',');
      const tag = `restart:${change.needsRestart.join(',')}:${JSON.stringify(wanted.backend)}:${shape}`;
      this.once.warn(tag, `network config changed (${change.needsRestart.join(', ')}); restart the agent to apply it, until then it keeps the config it started with`);
    }
    if (change.applied.length === 0) return undefined;
    const next = change.next;
    this.log.info('network config updated', {
      fields: change.applied.join(','),
      leaseTTLs: next.leaseTTLms / 1000,
      ...(next.ipv4 ? { subnetMin: next.ipv4.subnetMin.toString(), subnetMax: next.ipv4.subnetMax.toString() } : {}),
      ...(next.ipv6 ? { ipv6SubnetMin: next.ipv6.subnetMin.toString(), ipv6SubnetMax: next.ipv6.subnetMax.toString() } : {}),
    });
    return change;
  }
}
