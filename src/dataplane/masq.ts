// --ip-masq: what flanneld installs so that containers reach the world beyond the overlay.
// Traffic leaving the cluster network from a container is masqueraded to the host's address;
// traffic between containers is left alone. The rules live in weft's own nat chain with one
// jump from POSTROUTING, and every change is one `iptables-restore --noflush` transaction, so
// there is never a moment with half a rule set (a new network or subnet replaces the chain's
// contents in the same commit that adds the new ones).
//
// Level-triggered like the rest of the dataplane: observe the nat table (iptables-save), plan
// the difference from what is wanted (pure), apply it in one restore. "Wanted" is either the
// rules for (network, subnet) or nothing at all: an agent started without --ip-masq removes
// what an earlier run with it left behind.
//
// IPv4 only. IPv6 would be the same keeper run with ip6tables-save/ip6tables-restore and
// rules rendered from the IPv6 network and subnet, with ff00::/8 in place of 224.0.0.0/4.
import { createHash } from 'node:crypto';
import { execa } from 'execa';
import type { Cidr } from '../alloc/cidr.js';

/** The chain of the network named `default` (the one flanneld's defaults serve). */
export const MASQ_CHAIN = 'WEFT-POSTRTG';

/** flanneld's KubeProxyMark: kube-proxy masquerades these packets itself; NAT twice breaks them. */
const KUBE_PROXY_MARK = '0x4000/0x4000';

/**
 * The chain for a network: WEFT-POSTRTG for `default`, else WEFT-POSTRTG-<8 hex digits of the
 * name's SHA-256> (iptables allows 28 characters, a network name up to 63), so agents of two
 * networks on one host never rewrite or remove each other's rules.
 */
export function masqChainFor(network: string): string {
  if (network === 'default') return MASQ_CHAIN;
  return `${MASQ_CHAIN}-${createHash('sha256').update(network).digest('hex').slice(0, 8).toUpperCase()}`;
}

export interface MasqTarget {
  network: Cidr;
  subnet: Cidr;
}

/**
 * The chain's rules, as `iptables-save` prints them (the comparison with the live table is by
 * text, so this must be iptables' canonical form: the kernel test proves a second sync is a
 * no-op). flanneld's rule set (v0.2x), in its order.
 */
export function masqChainRules(chain: string, target: MasqTarget): string[] {
  const n = target.network.toString();
  const s = target.subnet.toString();
  const rule = (match: string, comment: string, jump: string) => `-A ${chain} ${match}-m comment --comment "weft: ${comment}" -j ${jump}`;
  return [
    rule(`-m mark --mark ${KUBE_PROXY_MARK} `, 'kube-proxy masquerades these', 'RETURN'),
    rule(`-s ${s} -d ${n} `, 'local containers to containers', 'RETURN'),
    rule(`-s ${n} -d ${s} `, 'containers to local containers', 'RETURN'),
    rule(`! -s ${n} -d ${s} `, 'outside to local containers', 'RETURN'),
    rule(`-s ${n} ! -d 224.0.0.0/4 `, 'containers to the world', 'MASQUERADE --random-fully'),
    rule(`! -s ${n} -d ${n} `, 'host to remote containers', 'MASQUERADE --random-fully'),
  ];
}

/** The one POSTROUTING rule (without "-A POSTROUTING ") that sends packets to the chain. */
export function masqJumpSpec(chain: string): string {
  return `-m comment --comment "weft masquerade" -j ${chain}`;
}

/** What the nat table holds of one chain. */
export interface NatState {
  /** The chain's rules ("-A CHAIN ..."), or undefined when the chain does not exist. */
  chain: string[] | undefined;
  /** Every rule, in any chain, that jumps (-j) or goes (-g) to the chain, as printed. */
  references: { chain: string; spec: string }[];
}

/**
 * Reads the `*nat` section of `iptables-save` output for one chain. Lines are split into
 * words the way iptables-save quotes them, so a comment that merely mentions the chain is not
 * taken for a jump.
 */
export function parseNatTable(save: string, chain: string): NatState {
  const state: NatState = { chain: undefined, references: [] };
  let inNat = false;
  for (const line of save.split('\n')) {
    if (line.startsWith('*')) {
      inNat = line === '*nat';
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
 * iptables-restore transaction. Declaring the chain (":CHAIN - [0:0]") with --noflush creates
 * it or empties just it; the rules that follow land in the same commit.
 */
export function planMasq(state: NatState, chain: string, target: MasqTarget | undefined): MasqPlan {
  const jump = masqJumpSpec(chain);
  if (!target) {
    if (state.chain === undefined && state.references.length === 0) return { change: 'unchanged' };
    const lines = [
      ...state.references.map((r) => `-D ${r.chain} ${r.spec}`),
      ...(state.chain !== undefined ? [`:${chain} - [0:0]`, `-X ${chain}`] : []),
    ];
    return { change: 'removed', restore: transaction(lines) };
  }
  const wanted = masqChainRules(chain, target);
  const chainOk = state.chain !== undefined && state.chain.length === wanted.length && state.chain.every((l, i) => l === wanted[i]);
  // Exactly one jump, ours, from POSTROUTING; any other reference (a duplicate, a stray jump
  // from another chain) is deleted.
  const ours = (r: { chain: string; spec: string }) => r.chain === 'POSTROUTING' && r.spec === jump;
  // "-D" deletes the first rule that matches, so with duplicates of our jump which one stays
  // cannot be chosen: delete them all and insert one afresh (same transaction, no gap).
  const keep = state.references.filter(ours).length === 1 ? state.references.findIndex(ours) : -1;
  const strays = state.references.filter((_, i) => i !== keep);
  if (chainOk && keep >= 0 && strays.length === 0) return { change: 'unchanged' };
  const lines = [
    ...(chainOk ? [] : [`:${chain} - [0:0]`, ...wanted]),
    ...strays.map((r) => `-D ${r.chain} ${r.spec}`),
    // First in POSTROUTING, as flanneld: before rules that would masquerade container traffic.
    ...(keep < 0 ? [`-I POSTROUTING 1 ${jump}`] : []),
  ];
  const fresh = state.chain === undefined && state.references.length === 0;
  return { change: fresh ? 'installed' : 'updated', restore: transaction(lines) };
}

function transaction(lines: string[]): string {
  for (const line of lines) {
    // Every line is rendered from validated CIDRs or read back from iptables-save; a line
    // break would smuggle in a second command.
    if (/[\n\r\0]/.test(line)) throw new MasqError(`refusing an iptables-restore line with a line break: ${JSON.stringify(line)}`);
  }
  return ['*nat', ...lines, 'COMMIT', ''].join('\n');
}

/** One line for the agent's log, per change. */
export function describeMasqChange(change: Exclude<MasqChange, 'unchanged'>): string {
  switch (change) {
    case 'installed':
      return 'installed the --ip-masq rules';
    case 'updated':
      return 'rewrote the --ip-masq rules (they were missing, changed, or for another network or subnet)';
    case 'removed':
      return 'removed --ip-masq rules left by an earlier run (this agent runs without --ip-masq)';
  }
}

export class MasqError extends Error {
  override readonly name = 'MasqError';
}

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
 * Keeps one network's masquerade rules as wanted. sync() runs one at a time (a resync tick and
 * a new lease can ask together; two concurrent plans could both add the jump) and costs two
 * processes at most: iptables-save, then iptables-restore only when something differs.
 */
export class MasqKeeper {
  /** Processes started, for tests. */
  runs = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** Set once the table was seen without weft's rules while none are wanted: nothing re-adds them. */
  private confirmedAbsent = false;

  constructor(
    readonly chain: string,
    private readonly exec: Exec = runProgram,
  ) {}

  /** Brings the nat table to `target` (undefined: none of this chain's rules); returns what changed. */
  sync(target: MasqTarget | undefined): Promise<MasqChange> {
    const next = this.queue.then(
      () => this.syncNow(target),
      () => this.syncNow(target),
    );
    this.queue = next.catch(() => {});
    return next;
  }

  private async syncNow(target: MasqTarget | undefined): Promise<MasqChange> {
    if (!target && this.confirmedAbsent) return 'unchanged';
    if (target) this.confirmedAbsent = false;
    // Without rules wanted, plain iptables-save lists only the tables that exist, so a host
    // that never used NAT does not get a nat table (or, with legacy iptables, its module).
    this.runs++;
    const save = await this.exec('iptables-save', target ? ['-t', 'nat'] : []);
    if (save.missing) {
      if (!target) {
        this.confirmedAbsent = true; // no iptables, so no rules of ours either
        return 'unchanged';
      }
      throw new MasqError('iptables-save not found: --ip-masq needs iptables');
    }
    if (save.exitCode !== 0) throw new MasqError(`iptables-save failed (exit ${save.exitCode}): ${firstLines(save.stderr)}`);
    const plan = planMasq(parseNatTable(save.stdout, this.chain), this.chain, target);
    if (plan.restore !== undefined) {
      this.runs++;
      const restore = await this.exec('iptables-restore', ['-w', '--noflush'], plan.restore);
      if (restore.missing) throw new MasqError('iptables-restore not found: --ip-masq needs iptables');
      if (restore.exitCode !== 0) throw new MasqError(`iptables-restore failed (exit ${restore.exitCode}): ${firstLines(restore.stderr)}`);
    }
    if (!target) this.confirmedAbsent = true;
    return plan.change;
  }
}

function firstLines(text: string): string {
  return text.trim().split('\n').slice(0, 3).join('; ');
}
