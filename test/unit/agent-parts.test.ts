// The agent's smaller parts on their own: re-reading the network config, and the files and
// rules it leaves on the host (subnet.env, --ip-masq). Pure apart from a temporary directory.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigReloader } from '../../src/agent/config-reload.js';
import { HostConfig, type RuleSyncer } from '../../src/agent/host-config.js';
import { WarnOnce } from '../../src/agent/timers.js';
import { Cidr } from '../../src/alloc/cidr.js';
import { decodeFlannelConfig, resolveNetwork } from '../../src/api/network.js';
import type { Logger } from '../../src/log.js';
import { Layout } from '../../src/store/layout.js';
import type { NetworkRecord } from '../../src/store/store.js';

function capture(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: (msg) => lines.push(`info ${msg}`),
    warn: (msg) => lines.push(`warn ${msg}`),
    error: (msg) => lines.push(`error ${msg}`),
    child: () => logger,
  };
  return { logger, lines };
}

function networkRecord(json: string, modRevision = 5): NetworkRecord {
  let spec: NetworkRecord['spec'];
  try {
    spec = { ok: true, value: decodeFlannelConfig(json) };
  } catch (err) {
    spec = { ok: false, error: (err as Error).message };
  }
  return { name: 'default', kv: { key: '/coreos.com/network/config', value: json, modRevision, createRevision: 1, version: 1, leaseId: '0' }, spec, meta: undefined };
}


const hostOpts = { network: 'default', ipMasqRandomFully: true, forwardRules: true, iptablesResyncMs: 5000 };
describe('ConfigReloader', () => {
  const reloader = (records: (NetworkRecord | undefined)[]) => {
    const { logger, lines } = capture();
    const store = { layout: new Layout(), readNetwork: async () => records.shift() };
    return { r: new ConfigReloader(store, 'default', logger, new WarnOnce(logger)), lines };
  };

  it('waits for a missing or broken config, saying so once per problem', async () => {
    const { r, lines } = reloader([undefined, undefined, networkRecord('{"Network":'), networkRecord('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}', 6)]);
    expect(await r.read()).toBeUndefined();
    expect(await r.read()).toBeUndefined();
    expect(await r.read()).toBeUndefined();
    expect((await r.read())?.ipv4?.network.toString()).toBe('10.5.0.0/16');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^warn no network config at \/coreos.com\/network\/config; waiting/);
    expect(lines[1]).toMatch(/^warn network config at \/coreos.com\/network\/config is unusable/);
  });

  it('applies a new subnet range live and asks once for a restart for a new VNI', async () => {
    const current = resolveNetwork('default', decodeFlannelConfig('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}')).config!;
    const { r, lines } = reloader([
      networkRecord('{"Network":"10.5.0.0/16","SubnetMin":"10.5.10.0","Backend":{"Type":"vxlan"}}'),
      networkRecord('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":7}}', 6),
      networkRecord('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":7}}', 6),
    ]);
    const change = await r.reload(current, { ipv4: Cidr.parse('10.5.3.0/24')! });
    expect(change?.applied).toEqual(['subnetMin']);
    expect(change?.subnetOutOfRange).toBe(true);
    expect(await r.reload(current, undefined)).toBeUndefined();
    expect(await r.reload(current, undefined)).toBeUndefined();
    expect(lines.filter((l) => l.includes('restart the agent'))).toHaveLength(1);
  });
});

describe('HostConfig', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
  const config = resolveNetwork('default', decodeFlannelConfig('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}')).config!;
  const subnets = { ipv4: Cidr.parse('10.5.3.0/24')! };

  it('writes subnet.env once per content', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-host-'));
    dirs.push(dir);
    const { logger, lines } = capture();
    const host = new HostConfig({ ...hostOpts, subnetFile: join(dir, 'subnet.env'), ipMasq: false }, logger, new WarnOnce(logger), { sync: async () => [] });
    expect(host.writeEnv(config, subnets, 1450)).toBe(true);
    expect(host.writeEnv(config, subnets, 1450)).toBe(false);
    expect(readFileSync(join(dir, 'subnet.env'), 'utf8')).toContain('FLANNEL_SUBNET=10.5.3.1/24\n');
    expect(lines).toEqual(['info wrote subnet file']);
  });

  it('keeps the iptables rules for our subnet, and says a failure once per chain until it heals', async () => {
    const { logger, lines } = capture();
    const outcomes: (string | Error)[] = ['installed', new Error('iptables-restore: not found'), new Error('again'), 'updated'];
    const targets: unknown[] = [];
    const rules: RuleSyncer = {
      sync: async (target) => {
        targets.push(`${target.ipMasq} ${target.forward} ${target.ipv4?.network} ${target.ipv4?.subnet} ${target.ipv6 === undefined}`);
        const o = outcomes.shift()!;
        const what = 'the --ip-masq rules';
        return [o instanceof Error ? { what, chain: 'WEFT-POSTRTG', error: o } : { what, chain: 'WEFT-POSTRTG', change: o as 'installed' | 'updated' }];
      },
    };
    const host = new HostConfig({ ...hostOpts, subnetFile: '/nonexistent/subnet.env', ipMasq: true }, logger, new WarnOnce(logger), rules);
    for (let i = 0; i < 4; i++) await host.applyRules(config, subnets);
    expect(targets).toEqual(Array(4).fill('true true 10.5.0.0/16 10.5.3.0/24 true'));
    expect(lines.filter((l) => l.startsWith('warn'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('info'))).toHaveLength(2);
  });
});
