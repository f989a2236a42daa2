// The start path's warm-up (src/agent/warm-up.ts): the build runs it before it writes the
// agent's code cache, so it must run the first pass's own code from etcd's bytes to packed
// netlink requests, on input etcd3 itself would decode the same way, and touch nothing else.
import { describe, expect, it } from 'vitest';
import { decodeLease } from '../../src/api/lease.js';
import { syntheticListing, warmUpStartPath } from '../../src/agent/warm-up.js';
import { decodeRangeResponse } from '../../src/store/range-decode.js';
import { etcdMethod } from '../helpers/etcd-proto.js';

const range = etcdMethod('KV', 'Range');

describe('the start path warm-up', () => {
  it("makes a listing etcd3's own decoder reads as weft's does, of distinct valid vxlan leases", () => {
    const bytes = syntheticListing(600);
    const ours = decodeRangeResponse(bytes);
    expect(ours).toEqual(range.responseDeserialize(bytes));
    expect(ours.kvs).toHaveLength(600);
    expect(ours.count).toBe('600');
    const keys = new Set(ours.kvs.map((kv) => kv.key.toString()));
    expect(keys.size).toBe(600);
    for (const kv of ours.kvs) {
      const lease = decodeLease(kv.value.toString());
      expect(lease.ok).toBe(true);
      if (lease.ok) expect(lease.value.backendType).toBe('vxlan');
    }
  });

  it('runs a bulk first pass to netlink requests: three per peer, our own lease left out', async () => {
    expect(await warmUpStartPath(600)).toBe(3 * 599);
    expect(await warmUpStartPath(2)).toBe(3);
  });
});
