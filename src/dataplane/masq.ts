// The iptables rules flanneld installs, kept by weft: --ip-masq (nat POSTROUTING, so that
// containers reach the world beyond the overlay: traffic leaving the cluster network from a
// container is masqueraded to the host's address; traffic between containers is left alone)
// and --iptables-forward-rules (filter FORWARD, flanneld's FLANNEL-FWD: ACCEPT what comes
// from or goes to the network, so a FORWARD policy of DROP, as Docker sets it, does not drop
// pod traffic between hosts). Each, for IPv4 (iptables) and IPv6 (ip6tables), lives in
// weft's own chain with one jump from the hook chain, and every change is one
// `iptables-restore --noflush` transaction, so there is never a moment with half a rule set
// (a new network or subnet replaces the chain's contents in the same commit).
//
// Level-triggered like the rest of the dataplane: observe the table (iptables-save), plan
// the difference from what is wanted (pure), apply it in one restore. "Wanted" is either the
// chain's rules or nothing at all: an agent started without the flag removes what an
// earlier run with it left behind. flanneld's own FLANNEL-* chains are never touched.
import { namedError } from '../api/errors.js';
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import type { IpNet } from '../alloc/cidr.js';
import type { GenerationReader } from './nft-generation.js';

/** The chain of the network named `default` (the one flanneld's defaults serve). */
export const MASQ_CHAIN = 'WEFT-POSTRTG';
/** The FORWARD chain of the network named `default`. */
export const FORWARD_CHAIN = 'WEFT-FWD';

/** flanneld's KubeProxyMark: kube-proxy masquerades these packets itself; NAT twice breaks them. */
const KUBE_PROXY_MARK = '0x4000/0x4000';

/** `base` for `default`, else base-<8 hex digits of the name's SHA-256> (iptables allows 28 characters). */
function chainFor(base: string, network: string): string {
  if (network === 'default') return base;
  return `${base}-${createHash('sha256').update(network).digest('hex').slice(0, 8).toUpperCase()}`;
}

/**
 * The chain for a network: WEFT-POSTRTG for `default`, else WEFT-POSTRTG-<8 hex digits of the
 * name's SHA-256> (iptables allows 28 characters, a network name up to 63), so agents of two
 * networks on one host never rewrite or remove each other's rules.
 */
export function masqChainFor(network: string): string {
  return chainFor(MASQ_CHAIN, network);
}

/** The FORWARD chain for a network, named as masqChainFor names the nat one. */
export function forwardChainFor(network: string): string {
  return chainFor(FORWARD_CHAIN, network);
}

export interface MasqTarget {
  /** The cluster network and this host's subnet, both of one family (IPv4, or IPv6 for ip6tables). */
  network: IpNet;
  subnet: IpNet;
  /** MASQUERADE --random-fully (flanneld's default; off with --ip-masq-fully-random-disable). */
  randomFully?: boolean;
}

/**
 * The chain's rules, as `iptables-save` prints them (the comparison with the live table is by
 * text, so this must be iptables' canonical form: the kernel test proves a second sync is a
 * no-op). flanneld's rule set (v0.2x), in its order; IPv6 leaves multicast ff00::/8 alone.
 */
export function masqChainRules(chain: string, target: MasqTarget): string[] {
  const n = target.network.toString();
  const s = target.subnet.toString();
  const multicast = target.network.family === 6 ? 'ff00::/8' : '224.0.0.0/4';
  const masquerade = target.randomFully === false ? 'MASQUERADE' : 'MASQUERADE --random-fully';
  const rule = (match: string, comment: string, jump: string) => `-A ${chain} ${match}-m comment --comment "weft: ${comment}" -j ${jump}`;
  return [
    rule(`-m mark --mark ${KUBE_PROXY_MARK} `, 'kube-proxy masquerades these', 'RETURN'),
    rule(`-s ${s} -d ${n} `, 'local containers to containers', 'RETURN'),
    rule(`-s ${n} -d ${s} `, 'containers to local containers', 'RETURN'),
    rule(`! -s ${n} -d ${s} `, 'outside to local containers', 'RETURN'),
    rule(`-s ${n} ! -d ${multicast} `, 'containers to the world', masquerade),
    rule(`! -s ${n} -d ${n} `, 'host to remote containers', masquerade),
  ];
}

/** flanneld's FLANNEL-FWD: accept what the network sends or receives, before any DROP. */
export function forwardChainRules(chain: string, network: IpNet): string[] {
  const n = network.toString();
  return [
    `-A ${chain} -s ${n} -m comment --comment "weft: from the network" -j ACCEPT`,
    `-A ${chain} -d ${n} -m comment --comment "weft: to the network" -j ACCEPT`,
  ];
}

/** Where a kind of chain lives and how it is hooked in. */
export interface ChainSpec {
  chain: string;
  table: 'nat' | 'filter';
  /** The built-in chain whose first rule jumps to ours. */
  hook: 'POSTROUTING' | 'FORWARD';
  /** The jump rule without "-A <hook> ". */
  jump: string;
}

export function masqChainSpec(chain: string): ChainSpec {
  return { chain, table: 'nat', hook: 'POSTROUTING', jump: masqJumpSpec(chain) };
}

export function forwardChainSpec(chain: string): ChainSpec {
  return { chain, table: 'filter', hook: 'FORWARD', jump: `-m comment --comment "weft forward" -j ${chain}` };
}

/** The one POSTROUTING rule (without "-A POSTROUTING ") that sends packets to the chain. */
export function masqJumpSpec(chain: string): string {
  return `-m comment --comment "weft masquerade" -j ${chain}`;
}

/** What a table holds of one chain. */
export interface NatState {
  /** The chain's rules ("-A CHAIN ..."), or undefined when the chain does not exist. */
  chain: string[] | undefined;
  /** Every rule, in any chain, that jumps (-j) or goes (-g) to the chain, as printed. */
  references: { chain: string; spec: string }[];
}

/** The `*nat` section's view of one chain (parseTable for the nat table). */
export function parseNatTable(save: string, chain: string): NatState {
  return parseTable(save, 'nat', chain);
}

/**
 * Reads one table's section of `iptables-save` output for one chain. Lines are split into
 * words the way iptables-save quotes them, so a comment that merely mentions the chain is not
 * taken for a jump.
 */
export function parseTable(save: string, table: string, chain: string): NatState {
  const state: NatState = { chain: undefined, references: [] };
  let inNat = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      inNat = line === `*${table}`;
      continue;
    }
    if (!inNat) continue;
    if (line === 'COMMIT') {
      inNat = false;
      continue;
    }
    if (line.startsWith(':')) {
      if (line.slice(1).split(' ')[0] === chain) state.chain ??= [];
      continue;
    }
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (!m) continue;
    const [, owner, spec] = m as unknown as [string, string, string];
    if (owner === chain) {
      state.chain ??= [];
      state.chain.push(line);
    }
    const words = splitWords(spec);
    for (let i = 0; i + 1 < words.length; i++) {
      if ((words[i] === '-j' || words[i] === '-g') && words[i + 1] === chain) {
        state.references.push({ chain: owner, spec });
        break;
      }
    }
  }
  return state;
}

/** iptables-save's word splitting: spaces separate words except inside "..." (\" escapes). */
function splitWords(text: string): string[] {
  const words: string[] = [];
  let word = '';
  let quoted = false;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '\\' && i + 1 < text.length) {
      word += text[++i];
    } else if (c === '"') {
      quoted = !quoted;
      started = true;
    } else if (c === ' ' && !quoted) {
      if (started) words.push(word);
      word = '';
      started = false;
    } else {
      word += c;
      started = true;
    }
  }
  if (started) words.push(word);
  return words;
}

export type MasqChange = 'unchanged' | 'installed' | 'updated' | 'removed';

export interface MasqPlan {
  change: MasqChange;
  /** iptables-restore --noflush input; absent when nothing is to be done. */
  restore?: string;
}

/**
 * From what the nat table holds to what is wanted (undefined: no weft rules), as one
 * iptables-restore transaction (planChain for the masquerade chain).
 */
export function planMasq(state: NatState, chain: string, target: MasqTarget | undefined): MasqPlan {
  return planChain(state, masqChainSpec(chain), target ? masqChainRules(chain, target) : undefined);
}

/**
 * From what the table holds to the wanted rules (undefined: none of this chain's), as one
 * iptables-restore transaction. Declaring the chain (":CHAIN - [0:0]") with --noflush creates
 * it or empties just it; the rules that follow land in the same commit.
 */
export function planChain(state: NatState, spec: ChainSpec, wanted: string[] | undefined): MasqPlan {
  const { chain, jump, hook } = spec;
  if (!wanted) {
    if (state.chain === undefined && state.references.length === 0) return { change: 'unchanged' };
    const lines = [
      ...state.references.map((r) => `-D ${r.chain} ${r.spec}`),
      ...(state.chain !== undefined ? [`:${chain} - [0:0]`, `-X ${chain}`] : []),
    ];
    return { change: 'removed', restore: transaction(spec.table, lines) };
  }
  const chainOk = state.chain !== undefined && state.chain.length === wanted.length && state.chain.every((l, i) => l === wanted[i]);
  // Exactly one jump, ours, from the hook chain; any other reference (a duplicate, a stray
  // jump from another chain) is deleted.
  const ours = (r: { chain: string; spec: string }) => r.chain === hook && r.spec === jump;
  // "-D" deletes the first rule that matches, so with duplicates of our jump which one stays
  // cannot be chosen: delete them all and insert one afresh (same transaction, no gap).
  const keep = state.references.filter(ours).length === 1 ? state.references.findIndex(ours) : -1;
  const strays = state.references.filter((_, i) => i !== keep);
  if (chainOk && keep >= 0 && strays.length === 0) return { change: 'unchanged' };
  const lines = [
    ...(chainOk ? [] : [`:${chain} - [0:0]`, ...wanted]),
    ...strays.map((r) => `-D ${r.chain} ${r.spec}`),
    // First in the hook chain, as flanneld: before rules that would masquerade or drop.
    ...(keep < 0 ? [`-I ${hook} 1 ${jump}`] : []),
  ];
  const fresh = state.chain === undefined && state.references.length === 0;
  return { change: fresh ? 'installed' : 'updated', restore: transaction(spec.table, lines) };
}

function transaction(table: string, lines: string[]): string {
  for (const line of lines) {
    // Every line is rendered from validated CIDRs or read back from iptables-save; a line
    // break would smuggle in a second command.
    if (/[\n\r\0]/.test(line)) throw new MasqError(`refusing an iptables-restore line with a line break: ${JSON.stringify(line)}`);
  }
  return [`*${table}`, ...lines, 'COMMIT', ''].join('\n');
}

/** One line for the agent's log, per change (the --ip-masq chain of IPv4 unless `what` says otherwise). */
export function describeMasqChange(change: Exclude<MasqChange, 'unchanged'>, what = 'the --ip-masq rules'): string {
  switch (change) {
    case 'installed':
      return `installed ${what}`;
    case 'updated':
      return `rewrote ${what} (they were missing, changed, or for another network or subnet)`;
    case 'removed':
      return `removed ${what.replace(/^the /, '')} left by an earlier run (this agent runs without the flag)`;
  }
}

export class MasqError extends namedError('MasqError') {}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The program was not found. */
  missing?: boolean;
}

/** Runs a program with an argument array (never a shell); injectable so tests target a namespace. */
export type Exec = (cmd: string, args: string[], input?: string) => Promise<ExecResult>;

export const runProgram: Exec = async (cmd, args, input) => {
  const r = await execa(cmd, args, { reject: false, input: input ?? '' });
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr || r.message || ''),
    ...((r as { code?: string }).code === 'ENOENT' ? { missing: true } : {}),
  };
};

/**
 * Keeps one chain as wanted in one family's tables. sync() runs one at a time (a resync tick
 * and a new lease can ask together; two concurrent plans could both add the jump) and costs
 * two processes at most: iptables-save, then iptables-restore only when something differs.
 */
export class ChainKeeper {
  /** Processes started, for tests. */
  runs = 0;
  /**
   * What the last iptables-save read: nftables (its header says "(nf_tables)"), whose changes
   * all bump the ruleset generation, or the legacy tables, whose changes do not.
   */
  backend: 'nft' | 'legacy' | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set once the table was seen without weft's rules while none are wanted: nothing re-adds them. */
  private confirmedAbsent = false;
  private readonly save: string;
  private readonly restore: string;

  constructor(
    readonly spec: ChainSpec,
    readonly family: 4 | 6,
    private readonly exec: Exec = runProgram,
  ) {
    this.save = family === 6 ? 'ip6tables-save' : 'iptables-save';
    this.restore = family === 6 ? 'ip6tables-restore' : 'iptables-restore';
  }

  get chain(): string {
    return this.spec.chain;
  }

  private needs(): string {
    const flag = this.spec.table === 'nat' ? '--ip-masq' : '--iptables-forward-rules';
    return `${flag} needs ${this.family === 6 ? 'ip6tables' : 'iptables'}`;
  }

  /** Brings the table to `wanted` rules (undefined: none of this chain's); returns what changed. */
  syncRules(wanted: string[] | undefined): Promise<MasqChange> {
    const next = this.queue.then(
      () => this.syncNow(wanted),
      () => this.syncNow(wanted),
    );
    this.queue = next.catch(() => {});
    return next;
  }

  private async syncNow(wanted: string[] | undefined): Promise<MasqChange> {
    if (!wanted && this.confirmedAbsent) return 'unchanged';
    if (wanted) this.confirmedAbsent = false;
    // Without rules wanted, plain iptables-save lists only the tables that exist, so a host
    // that never used NAT does not get a nat table (or, with legacy iptables, its module).
    this.runs++;
    const save = await this.exec(this.save, wanted ? ['-t', this.spec.table] : []);
    if (save.missing) {
      if (!wanted) {
        this.confirmedAbsent = true; // no iptables, so no rules of ours either
        return 'unchanged';
      }
      throw new MasqError(`${this.save} not found: ${this.needs()}`);
    }
    if (save.exitCode !== 0) throw new MasqError(`${this.save} failed (exit ${save.exitCode}): ${firstLines(save.stderr)}`);
    // A save of no table at all (a fresh namespace, nothing wanted) prints no header: unknown.
    const header = /^# Generated by .*$/m.exec(save.stdout)?.[0];
    if (header) this.backend = header.includes('(nf_tables)') ? 'nft' : 'legacy';
    const plan = planChain(parseTable(save.stdout, this.spec.table, this.spec.chain), this.spec, wanted);
    if (plan.restore !== undefined) {
      this.runs++;
      const restore = await this.exec(this.restore, ['-w', '--noflush'], plan.restore);
      if (restore.missing) throw new MasqError(`${this.restore} not found: ${this.needs()}`);
      if (restore.exitCode !== 0) throw new MasqError(`${this.restore} failed (exit ${restore.exitCode}): ${firstLines(restore.stderr)}`);
    }
    if (!wanted) this.confirmedAbsent = true;
    return plan.change;
  }
}

/** Keeps one network's IPv4 masquerade rules as wanted (a ChainKeeper of the nat chain). */
export class MasqKeeper extends ChainKeeper {
  constructor(chain: string, exec: Exec = runProgram, family: 4 | 6 = 4) {
    super(masqChainSpec(chain), family, exec);
  }

  /** Brings the nat table to `target` (undefined: none of this chain's rules); returns what changed. */
  sync(target: MasqTarget | undefined): Promise<MasqChange> {
    return this.syncRules(target ? masqChainRules(this.chain, target) : undefined);
  }
}

/** What one agent wants of its host's iptables: each family's network and subnet, and the flags. */
export interface HostRulesTarget {
  ipMasq: boolean;
  randomFully: boolean;
  forward: boolean;
  ipv4?: { network: IpNet; subnet: IpNet };
  ipv6?: { network: IpNet; subnet: IpNet };
}

/** How HostRules decides when it may skip the iptables-save processes. */
export interface RuleCheckOptions {
  /** The nftables ruleset generation of this namespace (nft-generation.ts); none: always read the tables. */
  generation?: GenerationReader;
  /** Read the tables at least this often even when the generation has not moved (the safety net). */
  fullCheckMs?: number;
  now?: () => number;
}

/**
 * The four chains flanneld keeps for a network (masquerade and FORWARD, IPv4 and IPv6), kept
 * together: each wanted one installed and repaired, each unwanted one (flag off, or a family
 * the network lacks) removed if an earlier run left it.
 *
 * A check costs a process per wanted chain (iptables-save, a fork of the whole agent), every
 * --iptables-resync seconds. Where iptables is nft-backed, every change to any rule (one of
 * ours deleted by hand included) is an nftables commit, which bumps the ruleset generation:
 * so once a check found everything as wanted, later checks with the same generation and the
 * same wanted rules skip the processes (one netlink request instead), and the tables are read
 * again at least every `fullCheckMs`. With legacy iptables, or no generation to read, every
 * check reads the tables as before.
 */
export class HostRules {
  readonly keepers: { what: string; kind: 'masq' | 'forward'; family: 4 | 6; keeper: ChainKeeper }[];
  /** Checks answered from the generation alone, for tests and the log. */
  skipped = 0;
  private verified: { generation: number; target: string; at: number } | undefined;
  private readonly generation: GenerationReader | undefined;
  private readonly fullCheckMs: number;
  private readonly now: () => number;

  constructor(network: string, exec: Exec = runProgram, opts: RuleCheckOptions = {}) {
    this.keepers = ([4, 6] as const).flatMap((family) => [
      { what: `the ${family === 6 ? 'IPv6 ' : ''}--ip-masq rules`, kind: 'masq' as const, family, keeper: new ChainKeeper(masqChainSpec(masqChainFor(network)), family, exec) },
      { what: `the ${family === 6 ? 'IPv6 ' : ''}FORWARD rules`, kind: 'forward' as const, family, keeper: new ChainKeeper(forwardChainSpec(forwardChainFor(network)), family, exec) },
    ]);
    this.generation = opts.generation;
    this.fullCheckMs = opts.fullCheckMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Syncs every chain; a failure of one does not stop the others. */
  async sync(target: HostRulesTarget): Promise<{ what: string; chain: string; change?: MasqChange; error?: Error }[]> {
    const wanted = describeTarget(target);
    // Read before the tables: a change after this read and before iptables-save is either seen
    // by the save or leaves a newer generation behind for the next check.
    const generation = await this.generation?.();
    const now = this.now();
    const v = this.verified;
    if (generation !== undefined && v && v.generation === generation && v.target === wanted && now - v.at < this.fullCheckMs) {
      this.skipped++;
      return this.keepers.map(({ what, keeper }) => ({ what, chain: keeper.chain, change: 'unchanged' as const }));
    }
    const results = await Promise.all(
      this.keepers.map(async ({ what, kind, family, keeper }) => {
        const stack = family === 6 ? target.ipv6 : target.ipv4;
        let wanted: string[] | undefined;
        if (stack && kind === 'masq' && target.ipMasq) {
          wanted = masqChainRules(keeper.chain, { ...stack, randomFully: target.randomFully });
        } else if (stack && kind === 'forward' && target.forward) {
          wanted = forwardChainRules(keeper.chain, stack.network);
        }
        try {
          return { what, chain: keeper.chain, change: await keeper.syncRules(wanted) };
        } catch (err) {
          return { what, chain: keeper.chain, error: err as Error };
        }
      }),
    );
    // Only a check that found every table as wanted (so made no commit of its own), all of
    // them read through nftables, vouches for this generation.
    const vouches =
      generation !== undefined &&
      results.every((r) => r.change === 'unchanged') &&
      this.keepers.every(({ keeper }) => keeper.backend !== 'legacy');
    this.verified = vouches ? { generation, target: wanted, at: now } : undefined;
    return results;
  }
}

/** The wanted rules' inputs as one comparable string. */
function describeTarget(t: HostRulesTarget): string {
  const stack = (s: { network: IpNet; subnet: IpNet } | undefined) => (s ? `${s.network.toString()} ${s.subnet.toString()}` : '-');
  return [t.ipMasq, t.randomFully, t.forward, stack(t.ipv4), stack(t.ipv6)].join('|');
}

function firstLines(text: string): string {
  return text.trim().split('\n').slice(0, 3).join('; ');
}
