// Pure parsers for what the testbed reads back: subnet.env files and ping's output.
// Kept free of I/O so they are unit tested on captured text.
import { Cidr, Ipv4 } from '../alloc/cidr.js';

export interface SubnetEnvFile {
  network: Cidr;
  /** The host's subnet, network address form (10.5.7.0/24). */
  subnet: Cidr;
  /** FLANNEL_SUBNET's address: the bridge (cni0) address, 10.5.7.1. */
  bridgeIp: Ipv4;
  mtu: number;
  ipMasq: boolean;
  text: string;
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

/** Parses Flannel's subnet.env. Throws SubnetEnvError when a field is missing or malformed. */
export function parseSubnetEnv(text: string): SubnetEnvFile {
  const vars = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  const need = (k: string): string => {
    const v = vars.get(k);
    if (v === undefined) throw new SubnetEnvError(`subnet.env has no ${k}`, text);
    return v;
  };
  const network = Cidr.parse(need('FLANNEL_NETWORK'), { strict: true });
  if (!network) throw new SubnetEnvError(`bad FLANNEL_NETWORK ${need('FLANNEL_NETWORK')}`, text);
  const subnetText = need('FLANNEL_SUBNET');
  const subnet = Cidr.parse(subnetText);
  const bridgeIp = Ipv4.parse(subnetText.split('/')[0]);
  if (!subnet || !bridgeIp || subnet.prefix > 30 || bridgeIp.equals(subnet.network)) {
    throw new SubnetEnvError(`bad FLANNEL_SUBNET ${subnetText}`, text);
  }
  const mtuText = need('FLANNEL_MTU');
  const mtu = Number(mtuText);
  if (!/^\d{2,5}$/.test(mtuText) || mtu < 68 || mtu > 65535) throw new SubnetEnvError(`bad FLANNEL_MTU ${mtuText}`, text);
  const masq = need('FLANNEL_IPMASQ');
  if (masq !== 'true' && masq !== 'false') throw new SubnetEnvError(`bad FLANNEL_IPMASQ ${masq}`, text);
  return { network, subnet, bridgeIp, mtu, ipMasq: masq === 'true', text };
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
}

/**
 * Reads the per-reply lines of a ping stopped with SIGINT. The summary counts the packet that
 * was in flight at the moment of the signal as lost; replies are counted per sequence number
 * instead, and an unanswered last sequence number is treated as in flight, not lost.
 */
export function parsePingStream(stdout: string, stderr = ''): PingStreamResult {
  const summary = parsePingSummary(stdout, stderr);
  const replied = new Set<number>();
  for (const m of stdout.matchAll(/bytes from \S+: icmp_seq=(\d+) /g)) replied.add(Number(m[1]));
  let sent = summary.sent;
  if (sent > 0 && !replied.has(sent)) sent -= 1;
  const lostSeqs: number[] = [];
  for (let seq = 1; seq <= sent; seq++) if (!replied.has(seq)) lostSeqs.push(seq);
  const received = sent - lostSeqs.length;
  const { rttAvgMs, error } = summary;
  return {
    sent,
    received,
    lost: lostSeqs.length,
    lostSeqs,
    ...(rttAvgMs !== undefined ? { rttAvgMs } : {}),
    ...(error !== undefined ? { error } : {}),
  };
}
