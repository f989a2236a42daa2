// The benches' hands inside the underlay namespace (where etcd listens): bulk lease writes, timed
// puts with a watcher as the baseline, kernel monitors on host namespaces, and the join storm.
// Driven by bench/lib.mjs over JSON lines on stdin/stdout. Timestamps are process.hrtime
// (CLOCK_MONOTONIC), comparable with the driver's.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';
import { leaseKeyOf, leaseValueOf, macOf, subnetOf } from './leases.mjs';

const now = () => process.hrtime.bigint();
let client;
let prefix;
/** key -> resolvers waiting for this key's next watch event */
const watchWaiters = new Map();
/** hrtime of the last watch event per key, for puts made before the waiter was registered */
let watcher;
const monitors = new Map(); // ns -> { procs, lines: [{t, line}], waiters: Set }

function send(msg) {
  process.stdout.write(JSON.stringify(msg, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
}

async function init({ endpoint, etcdPrefix }) {
  client = new Etcd3({ hosts: [endpoint] });
  prefix = etcdPrefix;
  watcher = await client.watch().prefix(`${prefix}/subnets/`).create();
  const onEvent = (kv) => {
    const t = now();
    const key = kv.key.toString();
    const w = watchWaiters.get(key);
    if (w) {
      watchWaiters.delete(key);
      w(t);
    }
  };
  watcher.on('put', onEvent);
  watcher.on('delete', onEvent);
  watcher.on('error', () => {});
  return { ok: true };
}

async function putConfig({ json }) {
  await client.put(`${prefix}/config`).value(json);
  return {};
}

/** Leases [from, to) in Flannel's format, 128 puts per transaction, one etcd lease per 1,000 keys. */
async function bulk({ from, to, ttl = 86400 }) {
  const t0 = now();
  let etcdLease;
  let txns = 0;
  for (let start = from; start < to; start += 128) {
    if ((start - from) % 1024 === 0) etcdLease = (await client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 })).ID;
    const ops = [];
    for (let i = start; i < Math.min(to, start + 128); i++) {
      ops.push({ request_put: { key: Buffer.from(`${prefix}/subnets/${leaseKeyOf(i)}`), value: Buffer.from(leaseValueOf(i)), lease: etcdLease } });
    }
    await client.kv.txn({ compare: [], success: ops, failure: [] });
    txns++;
  }
  return { ms: Number(now() - t0) / 1e6, txns };
}

async function deleteKey({ key }) {
  await client.delete().key(`${prefix}/subnets/${key}`);
  return {};
}

async function clearSubnets() {
  await client.delete().prefix(`${prefix}/subnets/`);
  return {};
}

// ---- kernel monitors ----

function startMonitor({ ns, kinds }) {
  if (monitors.has(ns)) return {};
  const m = { procs: [], lines: [], waiters: new Set() };
  monitors.set(ns, m);
  const spawnMon = (cmd, args) => {
    const p = spawn(cmd, ['-n', ns, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
    m.procs.push(p);
    createInterface({ input: p.stdout }).on('line', (line) => {
      const t = now();
      m.lines.push({ t, line });
      for (const w of m.waiters) w();
    });
  };
  if (kinds.includes('route')) spawnMon('ip', ['monitor', 'route']);
  if (kinds.includes('neigh')) spawnMon('ip', ['monitor', 'neigh']);
  if (kinds.includes('fdb')) spawnMon('bridge', ['monitor', 'fdb']);
  return untilSubscribed(m.procs);
}

/**
 * Resolves when every monitor has its netlink socket subscribed (a line of its own
 * /proc/PID/net/netlink with its port id, the pid, and groups set): a change made before
 * that is never printed, and the first event would wait for it in vain (seen under load).
 */
async function untilSubscribed(procs) {
  const subscribed = (pid) => {
    try {
      return readFileSync(`/proc/${pid}/net/netlink`, 'utf8')
        .split('\n')
        .some((l) => {
          const f = l.trim().split(/\s+/);
          return f[2] === String(pid) && /^[0-9a-f]+$/.test(f[3] ?? '') && Number.parseInt(f[3], 16) !== 0;
        });
    } catch {
      return false;
    }
  };
  for (let k = 0; k < 500; k++) {
    if (procs.every((p) => p.pid !== undefined && subscribed(p.pid))) return {};
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('the kernel monitors did not subscribe within 5 s');
}

/** Resolves with the monitor time of the first line (seen since `since`) starting with each expected prefix. */
function expectLines(ns, expected, since, timeoutMs) {
  const m = monitors.get(ns);
  return new Promise((resolve, reject) => {
    const found = new Map();
    const check = () => {
      for (const { t, line } of m.lines) {
        if (t < since) continue;
        for (const e of expected) if (!found.has(e) && line.startsWith(e)) found.set(e, t);
      }
      m.lines = m.lines.filter((l) => l.t >= since); // keep memory flat over many events
      if (found.size === expected.length) {
        clearTimeout(timer);
        m.waiters.delete(check);
        let max = 0n;
        for (const t of found.values()) if (t > max) max = t;
        resolve(max);
      }
    };
    const timer = setTimeout(() => {
      m.waiters.delete(check);
      reject(new Error(`${ns}: timed out waiting for ${expected.filter((e) => !found.has(e)).join(' | ')}`));
    }, timeoutMs);
    m.waiters.add(check);
    check();
  });
}

/** What the kernel must show for an event on peer i (prefixes of `ip monitor` / `bridge monitor` lines). */
function expectationsFor(kind, i, variant, kinds) {
  const net = subnetOf(i);
  const gw = net.split('/')[0];
  const mac = macOf(i, variant);
  const old = macOf(i, variant - 1);
  const all =
    kind === 'add'
      ? [['neigh', `${gw} dev flannel.1 lladdr ${mac}`], ['fdb', `${mac} dev flannel.1 dst`], ['route', `${net} via ${gw} dev flannel.1`]]
      : kind === 'change'
        ? [['neigh', `${gw} dev flannel.1 lladdr ${mac}`], ['fdb', `${mac} dev flannel.1 dst`], ['fdb', `Deleted ${old} dev flannel.1`]]
        : [['route', `Deleted ${net} via ${gw} dev flannel.1`], ['fdb', `Deleted ${mac} dev flannel.1`], ['neigh', `Deleted ${gw} dev flannel.1`]];
  return all.filter(([k]) => kinds.includes(k)).map(([, e]) => e);
}

/**
 * One timed event: put/delete peer i's lease, and wait for the worker's watch event and for
 * every host namespace's kernel to show it. kind: add | change | remove.
 */
async function event({ kind, i, variant = 0, hosts, kinds, timeoutMs = 20_000 }) {
  const key = `${prefix}/subnets/${leaseKeyOf(i)}`;
  const watched = new Promise((resolve) => watchWaiters.set(key, resolve));
  const tPut = now();
  const kernel = hosts.map((ns) => expectLines(ns, expectationsFor(kind, i, variant, kinds), tPut, timeoutMs));
  if (kind === 'remove') await client.delete().key(key);
  else await client.put(key).value(leaseValueOf(i, variant));
  const tAck = now();
  const tWatch = await watched;
  const tKernel = await Promise.all(kernel);
  return { tPut, tAck, tWatch, tKernel };
}

/** Requests etcd served so far, by method (grpc_server_started_total). */
async function metrics({ endpoint }) {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const byMethod = {};
  for (const line of text.split('\n')) {
    const m = /^grpc_server_started_total\{([^}]*)\} (\d+(?:\.\d+)?(?:e\+\d+)?)$/.exec(line);
    if (!m) continue;
    const method = /grpc_method="([^"]+)"/.exec(m[1])?.[1] ?? '?';
    byMethod[method] = (byMethod[method] ?? 0) + Number(m[2]);
  }
  return byMethod;
}

// ---- join storm ----

async function joinStorm({ endpoint, count, network, subnetLen }) {
  const { Store } = await import('../dist/store/store.js');
  const { LeaseWriter } = await import('../dist/store/leases.js');
  const { acquireLease } = await import('../dist/agent/acquire.js');
  const { resolveNetworkOrThrow, encodeFlannelConfig } = await import('../dist/api/network.js');
  const { Ipv4 } = await import('../dist/alloc/cidr.js');
  const { silentLogger } = await import('../dist/log.js');
  const stormPrefix = `/storm${Date.now()}/network`;
  const spec = { cidr: network, subnetLength: subnetLen, backend: { type: 'vxlan' } };
  await client.put(`${stormPrefix}/config`).value(encodeFlannelConfig(spec));
  const config = resolveNetworkOrThrow('default', spec);
  const stores = [];
  for (let i = 0; i < count; i++) stores.push(Store.connect({ endpoints: [endpoint], prefix: stormPrefix }));
  // Connect every client first, so the storm measures acquisition, not channel set-up.
  await Promise.all(stores.map((s) => s.client.get('/warmup').string()));
  const before = await metrics({ endpoint });
  const t0 = now();
  const results = await Promise.allSettled(
    stores.map((store, i) =>
      acquireLease({
        store,
        writer: new LeaseWriter(store, 'default'),
        config,
        identity: { nodeName: `storm-${i}`, publicIP: Ipv4.parse(`198.19.${i >> 8}.${(i & 255) + 1}`) },
        leaseValue: { publicIP: `198.19.${i >> 8}.${(i & 255) + 1}`, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: macOf(100000 + i, 0) }, nodeName: `storm-${i}` },
        logger: silentLogger,
      }).then((r) => ({ ...r, ms: Number(now() - t0) / 1e6 })),
    ),
  );
  const totalMs = Number(now() - t0) / 1e6;
  const after = await metrics({ endpoint });
  for (const s of stores) s.close();
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason?.message ?? r.reason));
  const subnets = new Set(ok.map((r) => r.held.subnets.ipv4.toString()));
  const delta = (m) => (after[m] ?? 0) - (before[m] ?? 0);
  const listed = await client.getAll().prefix(`${stormPrefix}/subnets/`).keys();
  return {
    acquired: ok.length,
    failed: failed.slice(0, 3),
    failedCount: failed.length,
    distinct: subnets.size,
    keysInEtcd: listed.length,
    totalMs,
    perLeaseMs: ok.map((r) => r.ms),
    attempts: ok.map((r) => r.attempts),
    requests: { Txn: delta('Txn'), Range: delta('Range'), LeaseGrant: delta('LeaseGrant'), Put: delta('Put') },
  };
}

const ops = { init, putConfig, bulk, deleteKey, clearSubnets, startMonitor, event, metrics, joinStorm };

createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, op, args } = JSON.parse(line);
  try {
    send({ id, result: await ops[op](args ?? {}) });
  } catch (err) {
    send({ id, error: String(err?.stack ?? err) });
  }
});
process.stdin.on('end', async () => {
  for (const m of monitors.values()) for (const p of m.procs) p.kill();
  await watcher?.cancel().catch(() => {});
  client?.close();
  process.exit(0);
});
