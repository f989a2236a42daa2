// Pure parsers for what the testbed reads back: subnet.env files and ping's output.
// Kept free of I/O so they are unit tested on captured text.
import { Cidr, Cidr6, Ipv4, Ipv6 } from '../alloc/cidr.js';

/** One address family's half of a subnet.env. */
export interface StackEnv<Net, Addr> {
  network: Net;
  /** The host's subnet, network address form (10.5.7.0/24, fd00:5:0:34::/64). */
  subnet: Net;
  /** FLANNEL_SUBNET's (FLANNEL_IPV6_SUBNET's) address: the bridge (cni0) address, 10.5.7.1. */
  bridgeIp: Addr;
}

/**
 * A subnet.env of any stack, as flanneld writes it: FLANNEL_NETWORK and FLANNEL_SUBNET when
 * IPv4 is on, FLANNEL_IPV6_NETWORK and FLANNEL_IPV6_SUBNET when IPv6 is on, at least one.
 */
export interface SubnetEnv {
  ipv4?: StackEnv<Cidr, Ipv4>;
  ipv6?: StackEnv<Cidr6, Ipv6>;
  mtu: number;
  ipMasq: boolean;
  text: string;
}

/** A subnet.env with IPv4 (the common case): its IPv4 half also at the top level. */
export interface SubnetEnvFile extends StackEnv<Cidr, Ipv4>, SubnetEnv {
  ipv4: StackEnv<Cidr, Ipv4>;
}

export class SubnetEnvError extends Error {
  override readonly name = 'SubnetEnvError';
  constructor(
    message: string,
    readonly text: string,
  ) {
    super(message);
  }
}

/** Parses Flannel's subnet.env, which must have IPv4. Throws SubnetEnvError when a field is missing or malformed. */
export function parseSubnetEnv(text: string): SubnetEnvFile {
  const env = parseAnySubnetEnv(text);
  if (!env.ipv4) throw new SubnetEnvError('subnet.env has no FLANNEL_SUBNET (IPv6 only?)', text);
  return { ...env, ...env.ipv4, ipv4: env.ipv4 };
}

/** Parses a subnet.env of any stack. Throws SubnetEnvError when a field is missing or malformed. */
export function parseAnySubnetEnv(text: string): SubnetEnv {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  const need = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined) throw new SubnetEnvError(`subnet.env has no ${k}`, text);
    return v;
  };
  let ipv4: SubnetEnv['ipv4'];
  if (vars.has('FLANNEL_NETWORK') || vars.has('FLANNEL_SUBNET') || !vars.has('FLANNEL_IPV6_SUBNET')) {
    const network = Cidr.parse(need('FLANNEL_NETWORK'), { strict: true });
    if (!network) throw new SubnetEnvError(`bad FLANNEL_NETWORK ${need('FLANNEL_NETWORK')}`, text);
    const subnetText = need('FLANNEL_SUBNET');
    const subnet = Cidr.parse(subnetText);
    const bridgeIp = Ipv4.parse(subnetText.split('/')[0]);
    if (!subnet || !bridgeIp || subnet.prefix > 30 || bridgeIp.equals(subnet.network)) {
      throw new SubnetEnvError(`bad FLANNEL_SUBNET ${subnetText}`, text);
    }
    ipv4 = { network, subnet, bridgeIp };
  }
  // The IPv6 twin of the IPv4 lines above (FLANNEL_IPV6_*, Cidr6, a /126 at most).
  let ipv6: SubnetEnv['ipv6'];
  if (vars.has('FLANNEL_IPV6_NETWORK') || vars.has('FLANNEL_IPV6_SUBNET')) {
    const network = Cidr6.parse(need('FLANNEL_IPV6_NETWORK'), { strict: true });
    if (!network) throw new SubnetEnvError(`bad FLANNEL_IPV6_NETWORK ${need('FLANNEL_IPV6_NETWORK')}`, text);
    const subnetText = need('FLANNEL_IPV6_SUBNET');
    const subnet = Cidr6.parse(subnetText);
    const bridgeIp = Ipv6.parse(subnetText.split('/')[0]);
    if (!subnet || !bridgeIp || subnet.prefix > 126 || bridgeIp.equals(subnet.network)) {
      throw new SubnetEnvError(`bad FLANNEL_IPV6_SUBNET ${subnetText}`, text);
    }
    ipv6 = { network, subnet, bridgeIp };
  }
  const mtuText = need('FLANNEL_MTU');
  const mtu = Number(mtuText);
  if (!/^\d{2,5}$/.test(mtuText) || mtu < 68 || mtu > 65535) throw new SubnetEnvError(`bad FLANNEL_MTU ${mtuText}`, text);
  const masq = need('FLANNEL_IPMASQ');
  if (masq !== 'true' && masq !== 'false') throw new SubnetEnvError(`bad FLANNEL_IPMASQ ${masq}`, text);
  return { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}), mtu, ipMasq: masq === 'true', text };
}

export interface PingResult {
  sent: number;
  received: number;
  lost: number;
  /** Average round trip in ms, when at least one reply came back. */
  rttAvgMs?: number;
  /** Why no summary was printed (e.g. "connect: Network is unreachable"). */
  error?: string;
}

/** Reads ping's closing summary ("3 packets transmitted, 3 received, ..." and the rtt line). */
export function parsePingSummary(stdout: string, stderr = ''): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(stdout);
  if (!m) {
    const error = (stderr.trim() || stdout.trim() || 'no output').split('\n').slice(-1)[0];
    return { sent: 0, received: 0, lost: 0, error };
  }
  const sent = Number(m[1]);
  const received = Number(m[2]);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(stdout);
  return { sent, received, lost: sent - received, ...(rtt ? { rttAvgMs: Number(rtt[1]) } : {}) };
}

export interface PingStreamResult extends PingResult {
  /** Sequence numbers that never got a reply (the last one, possibly in flight, excluded). */
  lostSeqs: number[];
  /** When each lost request was sent, and what came back instead; only for output of `ping -D`. */
  lostPings?: LostPing[];
}

export interface LostPing {
  seq: number;
  /** When the request was sent (ms since the epoch), estimated from the nearest timestamped line. */
  at: number;
  /** An ICMP error received for it instead of a reply ("From 10.5.1.0 icmp_seq=7 Destination Host Unreachable"). */
  note?: string;
}

/**
 * Reads the per-reply lines of a ping stopped with SIGINT. The summary counts the packet that
 * was in flight at the moment of the signal as lost; replies are counted per sequence number
 * instead, and an unanswered last sequence number is treated as in flight, not lost.
 * With the ping's interval, the lost requests of `ping -D` output are dated (lostPings).
 */
export function parsePingStream(stdout: string, stderr = '', intervalMs?: number): PingStreamResult {
  const summary = parsePingSummary(stdout, stderr);
  const replied = new Set<number>();
  for (const m of stdout.matchAll(/bytes from \S+: icmp_seq=(\d+) /g)) replied.add(Number(m[1]));
  let sent = summary.sent;
  if (sent > 0 && !replied.has(sent)) sent -= 1;
  const lostSeqs: number[] = [];
  for (let seq = 1; seq <= sent; seq++) if (!replied.has(seq)) lostSeqs.push(seq);
  const received = sent - lostSeqs.length;
  const { rttAvgMs, error } = summary;
  const lostPings = intervalMs !== undefined ? timeLostPings(stdout, lostSeqs, intervalMs) : undefined;
  return {
    sent,
    received,
    lost: lostSeqs.length,
    lostSeqs,
    ...(rttAvgMs !== undefined ? { rttAvgMs } : {}),
    ...(error !== undefined ? { error } : {}),
    ...(lostPings ? { lostPings } : {}),
  };
}

/**
 * Dates lost requests from `ping -D -O` output, whose lines start with `[<epoch seconds>]`.
 * A reply is dated when it arrived (a round trip after sending, negligible here); "no answer
 * yet for icmp_seq=N" is printed as N+1 is sent, one interval after N. A lost request is
 * dated from the nearest such anchor, counting whole intervals from it. Undefined when the
 * output has no timestamps at all.
 */
function timeLostPings(stdout: string, lostSeqs: number[], intervalMs: number): LostPing[] | undefined {
  const anchors: { seq: number; at: number }[] = [];
  const notes = new Map<number, string>();
  for (const line of stdout.split('\n')) {
    const m = /^\[(\d+\.\d+)\] (.*)$/.exec(line);
    if (!m) continue;
    const at = Number(m[1]) * 1000;
    const text = m[2]!;
    const reply = /bytes from \S+: icmp_seq=(\d+) /.exec(text);
    const noAnswer = /^no answer yet for icmp_seq=(\d+)/.exec(text);
    const icmpError = /^From \S+ icmp_seq=(\d+) (.+)$/.exec(text);
    if (reply) anchors.push({ seq: Number(reply[1]), at });
    else if (noAnswer) anchors.push({ seq: Number(noAnswer[1]), at: at - intervalMs });
    else if (icmpError) notes.set(Number(icmpError[1]), `${text.split(' icmp_seq=')[0]} ${icmpError[2]}`);
  }
  if (anchors.length === 0) return undefined;
  anchors.sort((a, b) => a.seq - b.seq);
  return lostSeqs.map((seq) => {
    // The nearest anchor by sequence number (binary search for the first at or after seq).
    let lo = 0;
    let hi = anchors.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (anchors[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    const after = anchors[lo];
    const before = anchors[lo - 1];
    const near = !before || (after && after.seq - seq < seq - before.seq) ? after! : before;
    const note = notes.get(seq);
    return { seq, at: Math.round(near.at + (seq - near.seq) * intervalMs), ...(note ? { note } : {}) };
  });
}
