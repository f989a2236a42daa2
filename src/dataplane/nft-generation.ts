// The nftables ruleset generation: a counter the kernel bumps at every commit to any nftables
// table of this network namespace. iptables-nft (what `iptables` is on current distributions)
// commits each change it makes, a rule deleted by hand included, so an unchanged generation
// means an unchanged ruleset. The iptables check (masq.ts) asks for it over netlink, in this
// process, before it starts an iptables-save: an idle agent then starts no process every
// --iptables-resync seconds, only when the rules changed (and at a slower full check).
import { loadNetlink, NetlinkSocket } from './netlink.js';
import type { Message, Request } from './rtnl.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
const NFT_MSG_GETGEN = 16;
const NFTA_GEN_ID = 1;
const NLM_F_REQUEST = 1;
/** struct nfgenmsg: family (AF_UNSPEC), version (NFNETLINK_V0), res_id. */
const NFGENMSG = 4;

/** The generation request (nfgenmsg only, no attributes). */
export function generationRequest(): Request {
  return { type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, flags: NLM_F_REQUEST, body: Buffer.alloc(NFGENMSG) };
}

/** NFTA_GEN_ID of an NFT_MSG_NEWGEN answer, or undefined when the answer is not one. */
export function generationOf(m: Message): number | undefined {
  if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) return undefined;
  const b = m.body;
  for (let off = NFGENMSG; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > b.length) return undefined;
    if (type === NFTA_GEN_ID && len >= 8) return b.readUInt32BE(off + 4);
    off += (len + 3) & ~3;
  }
  return undefined;
}

/** Reads the generation; undefined when it cannot (no binding, no nf_tables, refused). */
export type GenerationReader = () => Promise<number | undefined>;

/**
 * A reader on one netfilter socket of this process's namespace, opened on first use; always
 * undefined when the netlink binding is unavailable (the caller then checks every time).
 */
export function nftGenerationReader(): GenerationReader & { close(): void } {
  let sock: NetlinkSocket | undefined;
  let unavailable = false;
  const read = async (): Promise<number | undefined> => {
    if (unavailable) return undefined;
    if (!sock) {
      const nl = loadNetlink();
      if (!('Raw' in nl)) {
        unavailable = true;
        return undefined;
      }
      try {
        sock = new NetlinkSocket(nl.Raw, NETLINK_NETFILTER);
        // Unreferenced like the kernel channel's socket; closed before Node's teardown as that one is.
        process.once('exit', () => sock?.close());
      } catch {
        unavailable = true;
        return undefined;
      }
    }
    try {
      const answer = await sock.request(generationRequest());
      for (const m of answer) {
        const gen = generationOf(m);
        if (gen !== undefined) return gen;
      }
      return undefined;
    } catch {
      return undefined; // nf_tables not loaded, or the socket failed: check with iptables-save
    }
  };
  return Object.assign(read, { close: () => sock?.close() });
}
