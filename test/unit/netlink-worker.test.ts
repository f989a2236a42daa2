// The bulk thread's protocol (src/dataplane/netlink-worker.ts), without a thread or a kernel:
// requests survive packing, and a batch's second round leaves out exactly the requests whose
// first-round dependency was refused, sending the rest in one go.
import { describe, expect, it } from 'vitest';
import { NOT_SENT, pack, sendRounds, unpack } from '../../src/dataplane/netlink-worker.js';
import type { Request } from '../../src/dataplane/rtnl.js';

const req = (i: number): Request => ({ type: 24 + (i % 3), flags: 0x501, body: Buffer.from(Array.from({ length: 8 + (i % 5) }, (_, k) => (i * 7 + k) & 255)) });

describe('bulk thread protocol', () => {
  it('packs and unpacks requests unchanged', () => {
    const reqs = Array.from({ length: 300 }, (_, i) => req(i));
    const back = unpack(pack(1, reqs));
    expect(back.map((r) => [r.type, r.flags, [...r.body]])).toEqual(reqs.map((r) => [r.type, r.flags, [...r.body]]));
  });

  it('sends the second round without the requests whose dependency was refused', async () => {
    const sent: number[][] = [];
    const reqs = Array.from({ length: 7 }, (_, i) => req(i));
    // First round: 0..3 (request 1 is refused); second round: 4 (needs 0 and 2), 5 (needs 1), 6 (needs nothing).
    const sock = {
      transact: async (batch: readonly Request[]) => {
        sent.push(batch.map((r) => reqs.indexOf(r)));
        return batch.map((r) => (reqs.indexOf(r) === 1 ? 17 : 0));
      },
    };
    const errnos = await sendRounds(sock, reqs, { split: 4, deps: Int32Array.from([0, 2, 1, -1, -1, -1]) });
    expect(sent).toEqual([[0, 1, 2, 3], [4, 6]]);
    expect(errnos).toEqual([0, 17, 0, 0, 0, NOT_SENT, 0]);
  });
});
