// The start path's own code, run once on made-up leases so that V8's code cache holds it.
//
// Why: the agent's code cache (cli/agent-bundle.ts) is written by the build after the bundle's
// module initialisers ran. A function V8 has not compiled by then is not in it, and V8
// compiles a function the first time it is called: every function of a first pass (the
// listing's decoding, the lease values, the peer set, the model, the planner, the netlink
// encoding) was compiled inside an agent's start, in the time it keeps the kernel waiting.
// The build runs this before it writes the cache (WEFT_AGENT_CODE_CACHE=write), so that those
// functions are compiled in the cache too.
//
// Pure: no etcd, no kernel, no file, no log line. The channel below encodes and packs each
// operation as netlink would (opRequest, pack), then drops it.
import { Cidr, Ipv4 } from '../alloc/cidr.js';
import { encodeLease } from '../api/lease.js';
import { decodeFlannelConfig, resolveNetworkOrThrow } from '../api/network.js';
import type { KernelChannel } from '../dataplane/channel.js';
import { opRequest } from '../dataplane/channel.js';
import { PeerSync } from '../dataplane/converger.js';
import { modelContext, emptyState, toLinkName, type LinkName } from '../dataplane/model.js';
import { pack } from '../dataplane/netlink-worker.js';
import { SkipReporter } from '../dataplane/skips.js';
import { silentLogger } from '../log.js';
import { decodeRangeResponse } from '../store/range-decode.js';
import { subnetRecord, toKV } from '../store/store.js';
import { planAcquisition } from './acquire-plan.js';
import { diffListing } from './lease-watch.js';
import { PeerSet, peerChangeLines } from './peer-set.js';

/** Enough leases for a bulk pass of two chunks (converger.ts: 512 peers a chunk). */
const LEASES = 600;
const NETWORK = 'default';
const PREFIX = '/coreos.com/network/subnets/';

/** Protobuf's varints, length-delimited fields and integer fields: all a RangeResponse needs. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}
function bytesField(field: number, body: Buffer | number[]): number[] {
  return [(field << 3) | 2, ...varint(body.length), ...body];
}
function intField(field: number, n: number): number[] {
  return [field << 3, ...varint(n)];
}

/** etcd's answer to a listing of `count` Flannel vxlan leases (10.5.0.0/24, 10.5.1.0/24, ... 10.6.0.0/24, ...), as its bytes. */
export function syntheticListing(count: number): Buffer {
  const out: number[] = bytesField(1, [...intField(1, 1), ...intField(2, 2), ...intField(3, count + 10), ...intField(4, 2)]);
  for (let i = 0; i < count; i++) {
    const a = (i >> 8) & 0xff;
    const b = i & 0xff;
    const key = `${PREFIX}10.${5 + a}.${b}.0-24`;
    const value = encodeLease({
      publicIP: `192.0.${2 + a}.${b}`,
      backendType: 'vxlan',
      backendData: { VNI: 1, VtepMAC: `0a:58:0a:${(5 + a).toString(16).padStart(2, '0')}:${b.toString(16).padStart(2, '0')}:01` },
    });
    const kv = [
      ...bytesField(1, Buffer.from(key)),
      ...intField(2, 10 + i),
      ...intField(3, 10 + i),
      ...intField(4, 1),
      ...bytesField(5, Buffer.from(value)),
      ...intField(6, 0x7a1b2c3d + i),
    ];
    out.push(...bytesField(2, kv));
  }
  out.push(...intField(4, count));
  return Buffer.from(out);
}

/** A kernel channel that encodes and packs every operation as netlink's bulk path does, and sends nothing. */
function encodingChannel(): KernelChannel & { encoded: number } {
  const channel = {
    kind: 'netlink' as const,
    encoded: 0,
    async apply(ops: Parameters<KernelChannel['apply']>[0]) {
      const reqs = [];
      for (const op of ops) {
        const r = opRequest(op, 7);
        if (typeof r !== 'number') reqs.push(r);
      }
      const split = ops.findIndex((op) => op.kind === 'route' && op.action === 'replace');
      pack(1, reqs, { split: split < 0 ? ops.length : split, deps: new Int32Array(2 * Math.max(0, ops.length - Math.max(split, 0))).fill(-1) });
      channel.encoded += reqs.length;
      const ok = ops.map(() => true);
      return { ok, failures: 0, runs: 0, errors: [], errno: ops.map(() => 0) };
    },
    prepareBulk() {},
    async observe() {
      return emptyState();
    },
    async observeInto() {},
    async readDevice() {
      return undefined;
    },
    async changeDevice() {},
  };
  return channel;
}

/**
 * A first pass on `count` made-up leases, from etcd's bytes to packed netlink requests; the
 * number of requests encoded (3 per lease but our own). Awaits the pass's chunks (setImmediate).
 */
export async function warmUpStartPath(count = LEASES): Promise<number> {
  const listing = decodeRangeResponse(syntheticListing(count));
  const records = listing.kvs.map((kv) => subnetRecord(NETWORK, PREFIX, toKV(kv)));
  // The acquisition's plan from the same listing (a new host: a free subnet, picked at random).
  const config = resolveNetworkOrThrow(NETWORK, decodeFlannelConfig('{"Network":"10.0.0.0/8","Backend":{"Type":"vxlan"}}'));
  planAcquisition(config, records, { nodeName: 'warm-up', publicIP: Ipv4.parse('198.51.100.1')! }, undefined);
  const changes = diffListing(new Map(), records);
  const own = records[0]!.kv.key;
  const peers = new PeerSet(silentLogger, 'vxlan', 4, true, { subnetLen: 24 });
  peers.setOwnKey(own);
  peers.apply(changes);
  const { delta, changes: logged } = peers.take();
  peerChangeLines(logged);
  const channel = encodingChannel();
  const vxlanDev = toLinkName('flannel.1') as LinkName;
  const uplinkDev = toLinkName('eth0') as LinkName;
  const sync = new PeerSync(channel, { vxlanDev, uplinkDev, family: 4 }, silentLogger, new SkipReporter(silentLogger));
  const ctx = modelContext({
    settings: { type: 'vxlan', family: 4, vni: 1, port: 0, directRouting: false, gbp: false, network: Cidr.parse('10.0.0.0/8')! },
    uplink: { name: 'eth0', index: 2, mtu: 1500, address: Ipv4.parse('198.51.100.1')!, prefixLength: 24 },
    uplinkDev,
    vxlanDev,
    ownSubnet: records[0]!.subnets!.ipv4!,
  });
  await sync.convergeBulk(ctx, delta, false, performance.now());
  return channel.encoded;
}
