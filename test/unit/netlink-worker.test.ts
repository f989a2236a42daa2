// The bulk thread's protocol (src/dataplane/netlink-worker.ts), without a thread or a kernel:
// requests survive packing.
import { describe, expect, it } from 'vitest';
import { pack, unpack } from '../../src/dataplane/netlink-worker.js';
import type { Request } from '../../src/dataplane/rtnl.js';

const req = (i: number): Request => ({ type: 24 + (i % 3), flags: 0x501, body: Buffer.from(Array.from({ length: 8 + (i % 5) }, (_, k) => (i * 7 + k) & 255)) });

describe('bulk thread protocol', () => {
  it('packs and unpacks requests unchanged', () => {
    const reqs = Array.from({ length: 300 }, (_, i) => req(i));
    const back = unpack(pack(1, reqs));
    expect(back.map((r) => [r.type, r.flags, [...r.body]])).toEqual(reqs.map((r) => [r.type, r.flags, [...r.body]]));
  });
});
