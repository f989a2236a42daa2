// The lease watch's own gRPC stream (src/store/watch-stream.ts) through Store.watchPrefix,
// against real etcd: events as KVs from the start revision on, a compacted start revision
// reported broken after the watch was handed over, a listener's exception reported broken,
// a frozen etcd noticed by the keepalive pings,
// a token for a store with a user, and another member when one is dead or dies. The
// request encoding is checked against etcd's own codec.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KV, PrefixWatch, PrefixWatchListener } from '../../src/store/store.js';
import { Store } from '../../src/store/store.js';
import { StoreAuthError } from '../../src/store/errors.js';
import { prefixEnd } from '../../src/store/range.js';
import { encodeWatchCreate } from '../../src/store/watch-stream.js';
import { decodeAuthenticateToken, encodeAuthenticate, FrameReader, grpcFrame } from '../../src/store/grpc-http2.js';
import { startEtcd, startEtcdCluster, useEtcdWithUser, type EtcdCluster, type EtcdServer } from '../helpers/etcd.js';
import { etcdMethod } from '../helpers/etcd-proto.js';
import { waitFor } from '../helpers/wait.js';
import { createServer } from 'node:http2';
import type { AddressInfo } from 'node:net';

const PREFIX = `/weft-watch-stream-${process.pid}`;

/** A listener that records everything it hears. */
function recorder(): PrefixWatchListener & { seen: { type: 'put' | 'delete'; kv: KV }[]; broke: unknown[] } {
  const seen: { type: 'put' | 'delete'; kv: KV }[] = [];
  const broke: unknown[] = [];
  return {
    seen,
    broke,
    put: (kv) => seen.push({ type: 'put', kv }),
    delete: (kv) => seen.push({ type: 'delete', kv }),
    broken: (err) => broke.push(err),
  };
}

describe('the watch request, against etcd\'s own codec', () => {
  const method = (s: string, m: string) => etcdMethod(s, m, { defaults: false });

  it('encodes a create request as etcd reads it: key, range end, start revision, progress notify', () => {
    for (const rev of [0, 1, 127, 128, 300, 2 ** 31, 2 ** 53 - 1]) {
      const key = Buffer.from('/coreos.com/network/subnets/');
      const bytes = encodeWatchCreate(key, prefixEnd(key.toString()), rev);
      expect(method('Watch', 'Watch').requestDeserialize(bytes)).toEqual({
        create_request: {
          key: key,
          range_end: prefixEnd(key.toString()),
          start_revision: String(rev),
          progress_notify: true,
        },
        request_union: 'create_request',
      });
    }
    expect(() => encodeWatchCreate(Buffer.from('a'), Buffer.from('b'), -1)).toThrow(RangeError);
  });

  it('encodes Authenticate and reads the token of its answer', () => {
    const name = 'weft-ü';
    const password = 'p'.repeat(200);
    expect(method('Auth', 'Authenticate').requestDeserialize(encodeAuthenticate(name, password))).toEqual({ name, password });
    const answer = method('Auth', 'Authenticate').responseSerialize({
      header: { cluster_id: '1', member_id: '2', revision: '300', raft_term: '4' },
      token: 'abc.123',
    });
    expect(decodeAuthenticateToken(answer)).toBe('abc.123');
    expect(() => decodeAuthenticateToken(answer.subarray(0, answer.length - 2))).toThrow(RangeError);
  });

  it('reassembles frames split anywhere, and refuses compressed or oversized ones', () => {
    const messages = [Buffer.from('one'), Buffer.alloc(0), Buffer.alloc(70_000, 7)];
    const bytes = Buffer.concat(messages.map(grpcFrame));
    for (const cut of [1, 3, 5, 6, 8, 1000, 65_536]) {
      const r = new FrameReader();
      const got: Buffer[] = [];
      for (let i = 0; i < bytes.length; i += cut) got.push(...r.push(bytes.subarray(i, i + cut)));
      expect(got).toEqual(messages);
    }
    expect(() => new FrameReader().push(Buffer.from([1, 0, 0, 0, 1, 9]))).toThrow(/compressed/);
    expect(() => new FrameReader().push(Buffer.from([0, 0x7f, 0, 0, 0]))).toThrow(/at most/);
  });
});

describe('the watch stream against a scripted server', () => {
  const watchCodec = etcdMethod('Watch', 'Watch', { defaults: false });

  it('hands the watch over before reporting what came in the same chunk as its creation', async () => {
    // etcd answers a compacted start revision with `created`, then `canceled`: here both in
    // one DATA frame, the case where the caller could otherwise hear of it before it has the watch.
    const server = createServer();
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
      const created = watchCodec.responseSerialize({ header: { revision: '9' }, watch_id: '0', created: true });
      const canceled = watchCodec.responseSerialize({ header: { revision: '9' }, watch_id: '0', canceled: true, compact_revision: '5' });
      stream.write(Buffer.concat([grpcFrame(created), grpcFrame(canceled)]));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const store = new Store(undefined as never, undefined, [`http://127.0.0.1:${port}`]);
    try {
      let handedOver = false;
      const order: string[] = [];
      const w = await store.watchPrefix('/p/', 1, {
        put: () => {},
        delete: () => {},
        broken: (err) => order.push(`${handedOver ? 'after' : 'before'}: ${String(err)}`),
      });
      handedOver = true;
      await waitFor(() => order.length > 0, { what: 'the cancel to be reported' });
      expect(order).toEqual(['after: Error: etcd cancelled the watch: compacted at revision 5']);
      await w.cancel();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('Store.watchPrefix on one member', () => {
  let etcd: EtcdServer;
  let store: Store;
  const open: PrefixWatch[] = [];

  beforeAll(async () => {
    etcd = await startEtcd();
    store = Store.connect({ endpoints: [etcd.endpoint] });
  });
  afterAll(async () => {
    for (const w of open) await w.cancel();
    store?.close();
    await etcd?.stop();
  });

  it('delivers puts and deletes under the prefix from the start revision on, as KVs', async () => {
    const p = `${PREFIX}/a/`;
    await store.call(() => store.client.put(`${p}before`).value('0'));
    const { revision } = await store.list(p);
    const r = recorder();
    open.push(await store.watchPrefix(p, revision + 1, r));
    await store.call(() => store.client.put(`${p}k1`).value('v1'));
    await store.call(() => store.client.put(`${PREFIX}/b/outside`).value('x'));
    await store.call(() => store.client.put(`${p}k1`).value('v2'));
    await store.call(() => store.client.delete().key(`${p}k1`).exec());
    await waitFor(() => r.seen.length >= 3, { what: 'three watch events' });
    expect(r.seen.map((e) => [e.type, e.kv.key, e.kv.value, e.kv.version])).toEqual([
      ['put', `${p}k1`, 'v1', 1],
      ['put', `${p}k1`, 'v2', 2],
      ['delete', `${p}k1`, '', 0],
    ]);
    const revs = r.seen.map((e) => e.kv.modRevision);
    expect(revs[0]).toBeGreaterThan(revision);
    expect(revs).toEqual([...revs].sort((a, b) => a - b));
    expect(r.seen[0]!.kv.leaseId).toBe('0');
    expect(r.broke).toEqual([]);
  });

  it('reports a compacted start revision as broken, after the watch was handed over', async () => {
    const p = `${PREFIX}/c/`;
    await store.call(() => store.client.put(`${p}x`).value('1'));
    const { revision } = await store.list(p);
    await store.call(() => store.client.put(`${p}x`).value('2'));
    await store.call(() => store.client.kv.compact({ revision: revision + 1, physical: true }));
    const r = recorder();
    let handedOver = false;
    let brokenBeforeHandover = false;
    open.push(
      await store.watchPrefix(p, revision, {
        ...r,
        broken: (err) => {
          if (!handedOver) brokenBeforeHandover = true;
          r.broken(err);
        },
      }),
    );
    handedOver = true;
    await waitFor(() => r.broke.length > 0, { what: 'the compacted watch to be reported' });
    expect(brokenBeforeHandover).toBe(false);
    expect(String(r.broke[0])).toMatch(/compacted at revision/);
    expect(r.seen).toEqual([]);
  });

  it('reports a listener that throws as broken, once, and hears nothing more', async () => {
    const p = `${PREFIX}/d/`;
    const { revision } = await store.list(p);
    const broke: unknown[] = [];
    let puts = 0;
    open.push(
      await store.watchPrefix(p, revision + 1, {
        put: () => {
          puts++;
          throw new Error('listener bug');
        },
        delete: () => {},
        broken: (err) => broke.push(err),
      }),
    );
    await store.call(() => store.client.put(`${p}1`).value('1'));
    await store.call(() => store.client.put(`${p}2`).value('2'));
    await waitFor(() => broke.length > 0, { what: 'the listener failure to be reported' });
    const { revision: after } = await store.list(p);
    expect(after).toBeGreaterThan(revision + 1);
    expect(puts).toBe(1);
    expect(broke.map(String)).toEqual(['Error: listener bug']);
  });

  it('stays quiet after cancel', async () => {
    const p = `${PREFIX}/e/`;
    const { revision } = await store.list(p);
    const r = recorder();
    const w = await store.watchPrefix(p, revision + 1, r);
    await w.cancel();
    await w.cancel();
    await store.call(() => store.client.put(`${p}1`).value('1'));
    // A barrier: a second watch from the same revision hears the put; the cancelled one did not.
    const r2 = recorder();
    open.push(await store.watchPrefix(p, revision + 1, r2));
    await waitFor(() => r2.seen.length === 1, { what: 'the second watch to hear the put' });
    expect(r.seen).toEqual([]);
    expect(r.broke).toEqual([]);
  });

  it('reports a frozen etcd through its keepalive pings (10 s, then 5 s to answer)', async () => {
    const p = `${PREFIX}/frozen/`;
    const { revision } = await store.list(p);
    const r = recorder();
    open.push(await store.watchPrefix(p, revision + 1, r));
    const frozenAt = Date.now();
    etcd.pause();
    try {
      await waitFor(() => r.broke.length > 0, { timeoutMs: 25_000, what: 'the frozen etcd to be noticed' });
    } finally {
      etcd.resume();
    }
    const ms = Date.now() - frozenAt;
    expect(String(r.broke[0])).toMatch(/keepalive ping/);
    expect(ms).toBeLessThan(20_000);
  }, 30_000);
});

describe('Store.watchPrefix with a user', () => {
  const auth = { rootPassword: 'root-secret', user: 'weft', password: 'weft-secret', role: 'weft-rw', prefix: PREFIX + '/' };
  const fx = useEtcdWithUser(auth);

  it('watches under the role prefix with the user\'s token, and refuses a wrong password with StoreAuthError', async () => {
    const store = Store.connect({ endpoints: [fx.etcd.endpoint], username: auth.user, password: auth.password });
    const wrong = Store.connect({ endpoints: [fx.etcd.endpoint], username: auth.user, password: 'nope' });
    try {
      const p = `${PREFIX}/auth/`;
      const { revision } = await store.list(p);
      const r = recorder();
      const w = await store.watchPrefix(p, revision + 1, r);
      await store.call(() => store.client.put(`${p}k`).value('v'));
      await waitFor(() => r.seen.length === 1, { what: 'the event through an authenticated watch' });
      expect(r.seen[0]!.kv.value).toBe('v');
      await w.cancel();
      const err = await wrong.watchPrefix(p, revision + 1, recorder()).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(StoreAuthError);
      expect(err!.message).toMatch(/refused the credentials/);
      // Outside the role's prefix: etcd cancels the watch, reported as broken.
      const outside = recorder();
      const w2 = await store.watchPrefix('/elsewhere/', 1, outside);
      await waitFor(() => outside.broke.length > 0, { what: 'the refused watch to be reported' });
      expect(String(outside.broke[0])).toMatch(/permission denied/);
      await w2.cancel();
    } finally {
      store.close();
      wrong.close();
    }
  });
});

describe('Store.watchPrefix on a 3-member cluster', () => {
  let cluster: EtcdCluster;

  beforeAll(async () => {
    cluster = await startEtcdCluster();
  });
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('skips a dead member, reports the death of the one it watches on, and watches on another', async () => {
    await cluster.kill(0, 'SIGKILL');
    const store = Store.connect({ endpoints: cluster.endpoints });
    try {
      const p = `${PREFIX}/cluster/`;
      const { revision } = await store.list(p);
      const r = recorder();
      const w = await store.watchPrefix(p, revision + 1, r, { createTimeoutMs: 3000 });
      await store.call(() => store.client.put(`${p}1`).value('1'));
      await waitFor(() => r.seen.length === 1, { what: 'an event with member 0 dead' });
      // The member serving the watch: the only watch stream in the cluster is ours.
      const host = await waitFor(
        async () => {
          for (const i of [1, 2]) if ((await cluster.metric(i, 'etcd_debugging_mvcc_watch_stream_total')) > 0) return { i };
          return undefined;
        },
        { what: 'a member to report the watch stream' },
      ).then((h) => h.i);
      await cluster.restart(0);
      await cluster.kill(host, 'SIGKILL');
      await waitFor(() => r.broke.length === 1, { timeoutMs: 5000, what: 'the member\'s death to be reported' });
      await w.cancel();
      const { revision: now } = await store.list(p);
      const r2 = recorder();
      const w2 = await store.watchPrefix(p, now + 1, r2, { createTimeoutMs: 3000 });
      await store.call(() => store.client.put(`${p}2`).value('2'));
      await waitFor(() => r2.seen.length === 1, { what: 'an event on another member' });
      expect(r2.seen[0]!.kv.key).toBe(`${p}2`);
      await w2.cancel();
      await cluster.restart(host);
    } finally {
      store.close();
    }
  });
});
