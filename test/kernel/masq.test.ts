// The --ip-masq keeper against real iptables in a namespace, with each backend this machine has
// (iptables-nft and, when installed, iptables-legacy): what it installs is what iptables-save
// prints back (so a second sync starts no restore), drift is repaired, a new subnet or network
// replaces the chain, and "not wanted" removes everything of weft's and nothing else.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { Cidr } from '../../src/alloc/cidr.js';
import { masqChainFor, masqChainRules, MasqKeeper, type Exec, type MasqTarget } from '../../src/dataplane/masq.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';

const cidr = (s: string) => Cidr.parse(s, { strict: true })!;
const A: MasqTarget = { network: cidr('10.5.0.0/16'), subnet: cidr('10.5.7.0/24') };
const MOVED: MasqTarget = { network: cidr('10.5.0.0/16'), subnet: cidr('10.5.9.0/24') };
const RENUMBERED: MasqTarget = { network: cidr('10.6.0.0/16'), subnet: cidr('10.6.3.0/24') };
const CHAIN = 'WEFT-POSTRTG';
const JUMP = `-A POSTROUTING -m comment --comment "weft masquerade" -j ${CHAIN}`;
const FOREIGN = '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE';

const backends = [
  { name: 'nft', save: 'iptables-save', restore: 'iptables-restore', iptables: 'iptables' },
  ...(['/usr/sbin/iptables-legacy', '/sbin/iptables-legacy'].some((p) => existsSync(p))
    ? [{ name: 'legacy', save: 'iptables-legacy-save', restore: 'iptables-legacy-restore', iptables: 'iptables-legacy' }]
    : []),
];

const namespaces: TestNetns[] = [];
afterEach(async () => {
  for (const ns of namespaces.splice(0)) await ns.delete();
});

describe.each(backends)('MasqKeeper with iptables-$name (kernel)', (b) => {
  async function setup() {
    const ns = await createTestNetns(`masq${b.name}`);
    namespaces.push(ns);
    const inNs = (cmd: string, args: string[], input?: string) =>
      execa('ip', ['netns', 'exec', ns.name, cmd, ...args], { reject: false, input: input ?? '' });
    // The keeper calls iptables-save/iptables-restore; this backend's programs answer.
    const exec: Exec = async (cmd, args, input) => {
      const r = await inNs(cmd === 'iptables-save' ? b.save : cmd === 'iptables-restore' ? b.restore : cmd, args, input);
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    };
    const iptables = async (args: string[]) => {
      const r = await inNs(b.iptables, ['-w', '-t', 'nat', ...args]);
      expect(r.exitCode, String(r.stderr)).toBe(0);
    };
    /** The nat table's rules ("-A ..." lines) and user chains, as iptables-save prints them. */
    const nat = async () => {
      const r = await inNs(b.save, ['-t', 'nat']);
      const lines = String(r.stdout).split('\n');
      return {
        chains: lines.filter((l) => l.startsWith(':') && !/^:(PREROUTING|INPUT|OUTPUT|POSTROUTING) /.test(l)).map((l) => l.split(' ')[0]!.slice(1)),
        postrouting: lines.filter((l) => l.startsWith('-A POSTROUTING ')),
        rules: (chain: string) => lines.filter((l) => l.startsWith(`-A ${chain} `)),
      };
    };
    return { ns, exec, iptables, nat, inNs };
  }

  it('installs, leaves a correct table alone, repairs drift and follows a new subnet or network', async () => {
    const { exec, iptables, nat } = await setup();
    await iptables(FOREIGN.replace('-A', '-I').split(' ')); // someone else's rule, first in POSTROUTING
    const keeper = new MasqKeeper(CHAIN, exec);

    expect(await keeper.sync(A)).toBe('installed');
    let t = await nat();
    expect(t.rules(CHAIN)).toEqual(masqChainRules(CHAIN, A));
    expect(t.postrouting).toEqual([JUMP, FOREIGN]); // ours first, theirs kept
    expect(keeper.runs).toBe(2);

    // iptables prints back exactly what was rendered: a second sync only looks.
    expect(await keeper.sync(A)).toBe('unchanged');
    expect(keeper.runs).toBe(3);

    // Someone deletes the jump, then flushes the chain: each is put back.
    await iptables(['-D', 'POSTROUTING', '-m', 'comment', '--comment', 'weft masquerade', '-j', CHAIN]);
    expect(await keeper.sync(A)).toBe('updated');
    expect((await nat()).postrouting).toEqual([JUMP, FOREIGN]);
    await iptables(['-F', CHAIN]);
    expect(await keeper.sync(A)).toBe('updated');
    expect((await nat()).rules(CHAIN)).toEqual(masqChainRules(CHAIN, A));

    // A duplicate jump is removed.
    await iptables(['-A', 'POSTROUTING', '-m', 'comment', '--comment', 'weft masquerade', '-j', CHAIN]);
    expect(await keeper.sync(A)).toBe('updated');
    expect((await nat()).postrouting).toEqual([JUMP, FOREIGN]);

    // A new subnet, then a new network: the chain holds the new rules only, one jump stays.
    for (const next of [MOVED, RENUMBERED]) {
      const before = keeper.runs;
      expect(await keeper.sync(next)).toBe('updated');
      expect(keeper.runs - before).toBe(2); // one save, one restore: one transaction
      t = await nat();
      expect(t.rules(CHAIN)).toEqual(masqChainRules(CHAIN, next));
      expect(t.postrouting).toEqual([JUMP, FOREIGN]);
      expect(t.chains).toEqual([CHAIN]);
    }
  });

  it('without --ip-masq removes the chain and every jump to it, and nothing else', async () => {
    const { exec, iptables, nat } = await setup();
    await new MasqKeeper(CHAIN, exec).sync(A); // an earlier run with --ip-masq
    await iptables(FOREIGN.split(' '));
    await iptables(['-N', 'OTHER']);
    await iptables(['-A', 'OTHER', '-s', '10.0.0.0/8', '-j', CHAIN]);

    const keeper = new MasqKeeper(CHAIN, exec);
    expect(await keeper.sync(undefined)).toBe('removed');
    const t = await nat();
    expect(t.chains).toEqual(['OTHER']);
    expect(t.rules('OTHER')).toEqual([]);
    expect(t.postrouting).toEqual([FOREIGN]);
    // Once seen clean, nothing re-adds weft's rules: later syncs start no process.
    const runs = keeper.runs;
    expect(await keeper.sync(undefined)).toBe('unchanged');
    expect(keeper.runs).toBe(runs);
  });

  it('gives agents of two networks their own chains: removing one leaves the other', async () => {
    const { exec, nat } = await setup();
    const blue = masqChainFor('blue');
    const def = new MasqKeeper(CHAIN, exec);
    const other = new MasqKeeper(blue, exec);
    expect(await def.sync(A)).toBe('installed');
    expect(await other.sync(RENUMBERED)).toBe('installed');
    expect(await def.sync(A)).toBe('unchanged');
    expect(await new MasqKeeper(blue, exec).sync(undefined)).toBe('removed');
    const t = await nat();
    expect(t.chains).toEqual([CHAIN]);
    expect(t.rules(CHAIN)).toEqual(masqChainRules(CHAIN, A));
    expect(t.postrouting).toEqual([JUMP]);
  });

  it('serializes concurrent syncs (one jump), and creates no nat table when none is wanted', async () => {
    const { exec, nat, inNs } = await setup();
    const keeper = new MasqKeeper(CHAIN, exec);
    expect(await keeper.sync(undefined)).toBe('unchanged');
    expect(String((await inNs(b.save, [])).stdout)).not.toContain('*nat');

    const changes = await Promise.all([keeper.sync(A), keeper.sync(A), keeper.sync(A)]);
    expect(changes).toEqual(['installed', 'unchanged', 'unchanged']);
    expect((await nat()).postrouting).toEqual([JUMP]);
  });
});
