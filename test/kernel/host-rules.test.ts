// flanneld's iptables rules, kept by weft, against real iptables/ip6tables in namespaces:
// FORWARD rules (flanneld's FLANNEL-FWD, on by default) let pod traffic through a host whose
// FORWARD policy is DROP (Docker sets it), for IPv4 and IPv6; --ip-masq covers IPv6 with
// ip6tables as flanneld does. Drift is repaired; a flag turned off removes the rules.
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Cidr, Cidr6 } from '../../src/alloc/cidr.js';
import { forwardChainRules, HostRules, masqChainRules, type Exec } from '../../src/dataplane/masq.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';

const namespaces: TestNetns[] = [];
afterEach(async () => {
  for (const ns of namespaces.splice(0)) await ns.delete();
});

async function netns(role: string) {
  const ns = await createTestNetns(role);
  namespaces.push(ns);
  return ns;
}

const inNs = (ns: TestNetns, cmd: string, args: string[], input?: string) =>
  execa('ip', ['netns', 'exec', ns.name, cmd, ...args], { reject: false, input: input ?? '' });
const execIn = (ns: TestNetns): Exec => async (cmd, args, input) => {
  const r = await inNs(ns, cmd, args, input);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
};
const rulesOf = async (ns: TestNetns, save: string, table: string) =>
  String((await inNs(ns, save, ['-t', table])).stdout).split('\n').filter((l) => l.startsWith('-A '));

const V4 = { network: Cidr.parse('10.5.0.0/16')!, subnet: Cidr.parse('10.5.1.0/24')! };
const V6 = { network: Cidr6.parse('fd00:5::/48')!, subnet: Cidr6.parse('fd00:5:0:1::/64')! };

/** A host (router) between a pod of its subnet and a peer pod's host, FORWARD policy DROP. */
async function droppingRouter() {
  const r = await netns('fwdr');
  const pod = await netns('fwdp');
  const peer = await netns('fwdo');
  for (const [ns, dev, v4, v6, gw4, gw6] of [
    [pod, 'vp', '10.5.1.2/24', 'fd00:5:0:1::2/64', '10.5.1.1', 'fd00:5:0:1::1'],
    [peer, 'vo', '10.5.2.2/24', 'fd00:5:0:2::2/64', '10.5.2.1', 'fd00:5:0:2::1'],
  ] as const) {
    await r.ip(['link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
    await r.ip(['addr', 'add', `${gw4}/24`, 'dev', dev]);
    await r.ip(['-6', 'addr', 'add', `${gw6}/64`, 'dev', dev, 'nodad']);
    await r.ip(['link', 'set', dev, 'up']);
    await ns.ip(['addr', 'add', v4, 'dev', 'eth0']);
    await ns.ip(['-6', 'addr', 'add', v6, 'dev', 'eth0', 'nodad']);
    await ns.ip(['link', 'set', 'eth0', 'up']);
    await ns.ip(['route', 'add', 'default', 'via', gw4]);
    await ns.ip(['-6', 'route', 'add', 'default', 'via', gw6]);
  }
  await inNs(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await inNs(r, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  for (const tool of ['iptables', 'ip6tables']) expect((await inNs(r, tool, ['-w', '-P', 'FORWARD', 'DROP'])).exitCode).toBe(0);
  const ping = async (to: string) => (await inNs(pod, 'ping', ['-c', '1', '-W', '1', to])).exitCode === 0;
  return { r, ping };
}

describe('FORWARD rules and IPv6 masquerading (kernel)', () => {
  it('lets pod traffic through a FORWARD policy of DROP, IPv4 and IPv6, repairs drift, and goes with the flag', async () => {
    const { r, ping } = await droppingRouter();
    expect([await ping('10.5.2.2'), await ping('fd00:5:0:2::2')]).toEqual([false, false]);

    const rules = new HostRules('default', execIn(r));
    const on = { ipMasq: false, randomFully: true, forward: true, ipv4: V4, ipv6: V6 };
    const changes = (rs: Awaited<ReturnType<HostRules['sync']>>) => Object.fromEntries(rs.map((x) => [x.what, x.error?.message ?? x.change]));
    expect(changes(await rules.sync(on))).toEqual({
      'the --ip-masq rules': 'unchanged',
      'the FORWARD rules': 'installed',
      'the IPv6 --ip-masq rules': 'unchanged',
      'the IPv6 FORWARD rules': 'installed',
    });
    expect(await rulesOf(r, 'iptables-save', 'filter')).toEqual([
      '-A FORWARD -m comment --comment "weft forward" -j WEFT-FWD',
      ...forwardChainRules('WEFT-FWD', V4.network),
    ]);
    expect(await rulesOf(r, 'ip6tables-save', 'filter')).toEqual([
      '-A FORWARD -m comment --comment "weft forward" -j WEFT-FWD',
      ...forwardChainRules('WEFT-FWD', V6.network),
    ]);
    expect([await ping('10.5.2.2'), await ping('fd00:5:0:2::2')]).toEqual([true, true]);
    // What was rendered is what iptables prints back: a second sync changes nothing.
    expect(Object.values(changes(await rules.sync(on)))).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);

    // Drift: the jump deleted (IPv4), the chain flushed (IPv6): both repaired at the next sync.
    await inNs(r, 'iptables', ['-w', '-D', 'FORWARD', '-m', 'comment', '--comment', 'weft forward', '-j', 'WEFT-FWD']);
    await inNs(r, 'ip6tables', ['-w', '-F', 'WEFT-FWD']);
    expect([await ping('10.5.2.2'), await ping('fd00:5:0:2::2')]).toEqual([false, false]);
    const repaired = changes(await rules.sync(on));
    expect([repaired['the FORWARD rules'], repaired['the IPv6 FORWARD rules']]).toEqual(['updated', 'updated']);
    expect([await ping('10.5.2.2'), await ping('fd00:5:0:2::2')]).toEqual([true, true]);

    // --iptables-forward-rules=false: the rules go, and with them the traffic.
    const off = changes(await new HostRules('default', execIn(r)).sync({ ...on, forward: false }));
    expect([off['the FORWARD rules'], off['the IPv6 FORWARD rules']]).toEqual(['removed', 'removed']);
    expect(await rulesOf(r, 'iptables-save', 'filter')).toEqual([]);
    expect(await rulesOf(r, 'ip6tables-save', 'filter')).toEqual([]);
    expect([await ping('10.5.2.2'), await ping('fd00:5:0:2::2')]).toEqual([false, false]);
  });

  it('--ip-masq installs flanneld\'s IPv6 rules with ip6tables (multicast ff00::/8 left alone), with or without --random-fully', async () => {
    const ns = await netns('masq6');
    const rules = new HostRules('default', execIn(ns));
    const target = { ipMasq: true, randomFully: true, forward: false, ipv6: V6 };
    const results = await rules.sync(target);
    expect(results.find((x) => x.what === 'the IPv6 --ip-masq rules')!.change).toBe('installed');
    const nat6 = await rulesOf(ns, 'ip6tables-save', 'nat');
    expect(nat6).toEqual(['-A POSTROUTING -m comment --comment "weft masquerade" -j WEFT-POSTRTG', ...masqChainRules('WEFT-POSTRTG', V6)]);
    expect(nat6.join('\n')).toContain('-s fd00:5::/48 ! -d ff00::/8 -m comment --comment "weft: containers to the world" -j MASQUERADE --random-fully');
    // An IPv6-only network has no IPv4 rules.
    expect(await rulesOf(ns, 'iptables-save', 'nat')).toEqual([]);
    expect((await rules.sync(target)).every((x) => x.change === 'unchanged')).toBe(true);

    // --ip-masq-fully-random-disable: plain MASQUERADE, as iptables prints it back.
    const plain = await rules.sync({ ...target, randomFully: false });
    expect(plain.find((x) => x.what === 'the IPv6 --ip-masq rules')!.change).toBe('updated');
    expect(await rulesOf(ns, 'ip6tables-save', 'nat')).toEqual([
      '-A POSTROUTING -m comment --comment "weft masquerade" -j WEFT-POSTRTG',
      ...masqChainRules('WEFT-POSTRTG', { ...V6, randomFully: false }),
    ]);
    expect((await rules.sync({ ...target, randomFully: false })).every((x) => x.change === 'unchanged')).toBe(true);
  });
});
