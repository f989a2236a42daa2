// `make soak`: a bounded soak of the whole system on the testbed. Stable hosts ping each
// other continuously while other hosts join, leave and restart at random, stable agents
// restart too, and etcd is restarted twice. Reports packets lost between stable hosts,
// agent memory over time, and subnets ever held twice (both must be zero, memory flat).
// Every event is printed with its time; each lost ping is printed with its time, the pair
// of hosts and the events just before it (soak-report.ts), and the work dir with every
// agent's log is kept when anything was lost.
//
//   node dist/testbed/soak.js [--minutes 10] [--seed N] [--agent-log-level debug] [--keep]
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Cidr } from '../alloc/cidr.js';
import { agentLogEvents, clock, explainLosses, sinceStart, type SoakEvent, type SoakEventKind, type SoakLoss } from './soak-report.js';
import { Testbed, type Host, type PingHandle } from './topology.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    seed: { type: 'string' },
    'agent-log-level': { type: 'string', default: 'info' },
    keep: { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
if (!(minutes > 0 && minutes <= 120)) throw new Error('--minutes must be in (0, 120]');
if (values.seed !== undefined && !/^\d{1,10}$/.test(values.seed)) throw new Error('--seed must be a non-negative integer');
const agentLogLevel = values['agent-log-level']!;
if (!['debug', 'info', 'warn', 'error'].includes(agentLogLevel)) throw new Error('--agent-log-level must be debug, info, warn or error');

// A small seeded generator, so that a failing run can be replayed with --seed.
let state = Number(values.seed ?? Date.now() % 2 ** 31) >>> 0;
const seed = state;
const random = () => {
  state = (state * 1664525 + 1013904223) >>> 0;
  return state / 2 ** 32;
};
const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NETWORK = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: default
spec:
  cidr: 10.5.0.0/16
  backend:
    type: vxlan
  leaseTTL: 20s
`;
const AGENT_ARGS = ['--resync-interval', '10s', '--log-level', agentLogLevel];
const PING_INTERVAL_MS = 100;
const PREFIX = '/coreos.com/network/subnets/';

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

interface Counts {
  joins: number;
  leaves: number;
  restarts: number;
  stableRestarts: number;
  etcdRestarts: number;
  listings: number;
  doubled: number;
  doubledDetail: string[];
}

async function main(): Promise<number> {
  const started = Date.now();
  const deadline = started + minutes * 60_000;
  const tb = await Testbed.create({ runId: 'soak' });
  tb.keepWorkDir = values.keep!;
  const events: SoakEvent[] = [];
  let step = 0;
  const event = (kind: SoakEventKind, what: string) => {
    const at = Date.now();
    events.push({ at, kind, what });
    console.log(`${sinceStart(at, started).padStart(8)} ${clock(at)} [${step}] ${what}`);
  };
  console.log(`soak: ${minutes} min, seed ${seed}, work dir ${tb.workDir}`);
  const counts: Counts = { joins: 0, leaves: 0, restarts: 0, stableRestarts: 0, etcdRestarts: 0, listings: 0, doubled: 0, doubledDetail: [] };
  let checking = true;
  const pings: PingHandle[] = [];
  try {
    writeFileSync(join(tb.workDir, 'network.yaml'), NETWORK);
    const applied = await tb.weft(['apply', '-f', join(tb.workDir, 'network.yaml')]);
    if (applied.exitCode !== 0) throw new Error(`apply failed: ${applied.stderr}`);

    const join1 = async (index: number): Promise<Host> => {
      const host = await tb.addHost(index);
      tb.startAgent(host, AGENT_ARGS);
      await tb.waitForSubnetEnv(host, 60_000);
      await tb.addContainer(host);
      return host;
    };
    const stable = [await join1(1), await join1(2), await join1(3)];
    for (const a of stable) for (const b of stable) if (a !== b) await tb.waitReachable(a.containers[0]!, b.containers[0]!.ip, 20_000);
    const pairs = ([[0, 1], [1, 2], [2, 0]] as const).map(([a, b]) => ({ from: stable[a]!, to: stable[b]! }));
    for (const { from, to } of pairs) pings.push(tb.startPing(from.containers[0]!, to.containers[0]!.ip, PING_INTERVAL_MS));
    for (const h of stable) event('note', `${h.name} is stable: ${tb.readSubnetEnv(h)?.subnet.toString()}, agent pid ${h.agent?.pid}`);
    event('note', `pings started (${pairs.map((p) => `${p.from.name}->${p.to.name}`).join(', ')}, every ${PING_INTERVAL_MS} ms)`);

    // The checker: list every lease continuously; no two keys may ever overlap, no node hold two.
    const checker = (async () => {
      while (checking) {
        const r = await tb.etcdctl(['get', '--prefix', PREFIX, '-w', 'json', '--command-timeout=2s']);
        if (r.exitCode === 0) {
          counts.listings++;
          const kvs = (JSON.parse(r.stdout) as { kvs?: { key: string; value: string }[] }).kvs ?? [];
          const held = kvs.map((kv) => {
            const key = Buffer.from(kv.key, 'base64').toString().slice(PREFIX.length);
            const value = JSON.parse(Buffer.from(kv.value, 'base64').toString()) as { NodeName?: string };
            return { key, cidr: Cidr.fromKey(key)!, node: value.NodeName };
          });
          held.sort((a, b) => a.cidr.first - b.cidr.first);
          for (let i = 1; i < held.length; i++) {
            if (held[i]!.cidr.first <= held[i - 1]!.cidr.last) {
              counts.doubled++;
              counts.doubledDetail.push(`${sinceStart(Date.now(), started)} ${held[i - 1]!.key} overlaps ${held[i]!.key}`);
            }
          }
          const nodes = held.map((h) => h.node).filter(Boolean);
          if (new Set(nodes).size !== nodes.length) {
            counts.doubled++;
            counts.doubledDetail.push(`${sinceStart(Date.now(), started)} a node holds two keys: ${nodes.join(',')}`);
          }
        }
        await sleep(250);
      }
    })();

    const memory: { minute: number; rss: number[] }[] = [];
    const sampleMemory = () => memory.push({ minute: Math.round((Date.now() - started) / 60_000), rss: stable.map((h) => rssKiB(h.agent!.pid)) });
    await sleep(10_000);
    sampleMemory();
    let nextSample = Date.now() + 60_000;

    const churn = new Map<number, Host>();
    let nextIndex = 10;
    const etcdRestartsAt = [started + (deadline - started) / 3, started + (2 * (deadline - started)) / 3];
    while (Date.now() < deadline - 20_000) {
      step++;
      if (etcdRestartsAt.length && Date.now() >= etcdRestartsAt[0]!) {
        etcdRestartsAt.shift();
        event('etcd restart', 'etcd restart: stopping');
        await tb.stopEtcd();
        event('etcd restart', 'etcd restart: stopped');
        await sleep(5000 + random() * 5000);
        await tb.startEtcdAgain();
        event('etcd restart', 'etcd restart: serving again');
        counts.etcdRestarts++;
      }
      const roll = random();
      try {
        if ((roll < 0.35 && churn.size < 6) || churn.size === 0) {
          const index = nextIndex++;
          event('join', `join h${index}`);
          const host = await join1(index);
          churn.set(index, host);
          event('join', `join h${index}: up with ${tb.readSubnetEnv(host)?.subnet.toString()}`);
          counts.joins++;
        } else if (roll < 0.6) {
          const host = pick([...churn.values()]);
          const key = tb.readSubnetEnv(host)?.subnet.toKey();
          event('leave', `leave ${host.name} (${key ?? 'no subnet.env'})`);
          await tb.removeHost(host);
          churn.delete(host.index);
          event('leave', `leave ${host.name}: host removed${key ? ', deleting its lease' : ''}`);
          if (key) await tb.weft(['delete', 'lease', key]);
          counts.leaves++;
        } else if (roll < 0.85 && churn.size > 0) {
          const host = pick([...churn.values()]);
          const signal = random() < 0.5 ? 'SIGTERM' : 'SIGKILL';
          event('churn restart', `restart ${host.name} (${signal})`);
          await tb.stopAgent(host, signal);
          const agent = tb.startAgent(host, AGENT_ARGS);
          event('churn restart', `restart ${host.name} (${signal}): stopped, new agent pid ${agent.pid}`);
          counts.restarts++;
        } else {
          // h1's agent is never restarted: its memory is the series that shows a trend.
          const host = pick(stable.slice(1));
          const signal = random() < 0.5 ? 'SIGTERM' : 'SIGKILL';
          event('stable restart', `restart stable ${host.name} (${signal})`);
          await tb.stopAgent(host, signal);
          const agent = tb.startAgent(host, AGENT_ARGS);
          event('stable restart', `restart stable ${host.name} (${signal}): stopped, new agent pid ${agent.pid}`);
          counts.stableRestarts++;
        }
      } catch (err) {
        event('note', `step failed: ${(err as Error).message}`);
      }
      if (Date.now() >= nextSample) {
        sampleMemory();
        nextSample += 60_000;
      }
      await sleep(1000 + random() * 4000);
    }

    // Let everything settle, then every live container must reach every other.
    event('note', 'churn over; checking that every live container reaches every other');
    const live = [...stable, ...churn.values()];
    for (const a of live) {
      for (const b of live) {
        if (a !== b) await tb.waitReachable(a.containers[0]!, b.containers[0]!.ip, 30_000);
      }
    }
    sampleMemory();
    checking = false;
    await checker;
    const traffic = await Promise.all(pings.splice(0).map((p) => p.stop()));
    const sent = traffic.reduce((s, t) => s + t.sent, 0);
    const lost = traffic.reduce((s, t) => s + t.lost, 0);
    const losses: SoakLoss[] = traffic.flatMap((t, i) => {
      const pair = `${pairs[i]!.from.name}->${pairs[i]!.to.name}`;
      // startPing dates every loss; should one come without a date, it is listed at the end.
      const dated = t.lostPings ?? t.lostSeqs.map((seq) => ({ seq, at: Date.now() }));
      return dated.map((l) => ({ pair, ...l }));
    });

    const first = memory[0]!.rss;
    const last = memory[memory.length - 1]!.rss;
    console.log('\nsoak summary');
    console.log(`  duration              ${((Date.now() - started) / 60_000).toFixed(1)} min (seed ${seed})`);
    console.log(`  joins/leaves/restarts ${counts.joins}/${counts.leaves}/${counts.restarts} churn, ${counts.stableRestarts} stable-agent restarts, ${counts.etcdRestarts} etcd restarts`);
    console.log(`  pings between stable  ${sent} sent, ${lost} lost`);
    console.log(`  lease listings        ${counts.listings}, subnets doubled: ${counts.doubled}`);
    for (const d of counts.doubledDetail.slice(0, 5)) console.log(`    ${d}`);
    console.log('  stable agents RSS (MiB) by minute: h1 (never restarted), h2, h3 (restarted at random)');
    for (const m of memory) console.log(`    ${String(m.minute).padStart(3)}  ${m.rss.map((k) => (k / 1024).toFixed(1).padStart(6)).join(' ')}`);
    // The stable agents' warnings go beside the soak's own events: a lost lease, a refused
    // kernel operation or an etcd outage then shows up next to the loss it caused.
    const agentLines = stable.flatMap((h) => agentLogEvents(h.name, tb.agentLog(h)));
    const explained = explainLosses(losses, [...events, ...agentLines], { startedAt: started });
    if (explained.length > 0) console.log(['', ...explained].join('\n'));
    const ok = lost === 0 && counts.doubled === 0;
    if (!ok) {
      tb.keepWorkDir = true;
      console.log(`  agents' logs kept in ${tb.workDir}/h*/agent.log (times in UTC)`);
    }
    console.log(
      `SOAK ${JSON.stringify({ minutes: Number(((Date.now() - started) / 60_000).toFixed(1)), seed, sent, lost, ...counts, doubledDetail: undefined, rssStartKiB: first, rssEndKiB: last })}`,
    );
    return ok ? 0 : 1;
  } catch (err) {
    tb.keepWorkDir = true;
    console.log(`soak stopped by an error; agents' logs kept in ${tb.workDir}/h*/agent.log`);
    throw err;
  } finally {
    checking = false;
    for (const p of pings) await p.stop().catch(() => {});
    await tb.teardown();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`soak failed: ${(err as Error).stack ?? err}`);
    process.exit(2);
  },
);
