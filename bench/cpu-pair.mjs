// A/B of two builds' CPU per lease event, in the same seconds: one agent of each build on two
// hosts of one testbed, N peers programmed on both, then rounds of 200 events (add / new MAC /
// remove, one at a time, each waited for in both kernels), each agent's CPU counted per round.
// On a shared VM whose speed moves by a third between minutes, this pairs every figure of A
// with one of B measured over the same events and seconds; two runs one after another do not.
//
//   node bench/cpu-pair.mjs A/bin/weft B/bin/weft [N] [ROUNDS]     (N 5000, ROUNDS 5)
import { cpuBetween, percentile, procUsage, round, startAgent, untilQuiet, waitForEntries, withTestbed } from './lib.mjs';

const [binA, binB, nArg, roundsArg] = process.argv.slice(2);
if (!binA || !binB) {
  console.error('usage: node bench/cpu-pair.mjs A/bin/weft B/bin/weft [N] [ROUNDS]');
  process.exit(2);
}
const N = Number(nArg ?? 5000);
const ROUNDS = Number(roundsArg ?? 5);
const EVENTS = 200;
const KINDS = ['add', 'change', 'remove'];

const result = await withTestbed(async (tb, worker) => {
  await worker.call('bulk', { from: 0, to: N });
  const agents = [];
  for (const [k, bin] of [binA, binB].entries()) {
    const host = await tb.addHost(k + 1);
    tb.weftBin = bin; // the testbed starts every agent from its weftBin: one build per host
    agents.push({ bin, host, ...startAgent(tb, host) });
  }
  for (const a of agents) await waitForEntries(a.host, a.pid, N, { agent: a.agent });
  await untilQuiet(agents.map((a) => a.pid));
  const hosts = agents.map((a) => a.host.ns);
  const kinds = ['route', 'neigh', 'fdb'];
  await worker.call('startMonitor', { ns: hosts[0], kinds });
  await worker.call('startMonitor', { ns: hosts[1], kinds });
  let peer = N;
  const run = async (count) => {
    for (let e = 0; e < count; e++) {
      const kind = KINDS[e % 3];
      await worker.call('event', { kind, i: peer + Math.floor(e / 3), variant: kind === 'add' ? 0 : 1, hosts, kinds });
    }
    peer += Math.ceil(count / 3);
  };
  await run(6); // first-use paths, as bench/incremental.mjs warms up
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const u0 = agents.map((a) => procUsage(a.pid));
    await run(EVENTS);
    const u1 = agents.map((a) => procUsage(a.pid));
    rounds.push(agents.map((_, k) => cpuBetween(u0[k], u1[k])));
  }
  for (const a of agents) await tb.stopAgent(a.host);
  return rounds;
});

const perEvent = (k, f) => result.map((r) => r[k][f] / EVENTS);
console.log(`CPU per event, ${N} peers, ${ROUNDS} rounds of ${EVENTS} events (A = ${binA}, B = ${binB}):`);
result.forEach((r, i) =>
  console.log(`  round ${i + 1}: A ${round(r[0].cpuMs / EVENTS, 3)} ms (main thread ${round(r[0].mainThreadCpuMs / EVENTS, 3)}), B ${round(r[1].cpuMs / EVENTS, 3)} ms (main thread ${round(r[1].mainThreadCpuMs / EVENTS, 3)}), B/A ${round(r[1].cpuMs / r[0].cpuMs, 3)}`),
);
const ratios = result.map((r) => r[1].cpuMs / r[0].cpuMs);
console.log(`  median: A ${round(percentile(perEvent(0, 'cpuMs'), 50), 3)} ms, B ${round(percentile(perEvent(1, 'cpuMs'), 50), 3)} ms; B/A median ${round(percentile(ratios, 50), 3)}`);
