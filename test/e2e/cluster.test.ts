// The overlay on a 3-member etcd cluster, as users run it once they outgrow one etcd: killing
// the leader, and later a follower, changes nothing for traffic, leases or the CLI.
import { describe, expect, it } from 'vitest';
import { poll } from '../../src/testbed/poll.js';
import type { Testbed, Host, PingHandle, WatchHandle } from '../../src/testbed/topology.js';
import { applyYaml, expectFullMesh, joinHost, kernelState, networkYaml, testbedFor } from './helpers.js';

const PREFIX = '/coreos.com/network';
const SUBNETS = `${PREFIX}/subnets/`;
// Short enough that a lease nobody renews through the surviving members expires inside the test.
const LEASE_TTL_MS = 8000;
let tb: Testbed;
let hosts: Host[];
let watch: WatchHandle;

testbedFor((created) => (tb = created), {
  options: { etcdMembers: 3 },
  setup: async () => {
    await applyYaml(tb, 'network', networkYaml({ leaseTTL: `${LEASE_TTL_MS / 1000}s` }));
    for (const i of [1, 2, 3]) await joinHost(tb, i);
    hosts = [1, 2, 3].map((i) => tb.host(i));
    await expectFullMesh(tb);
    watch = tb.watchPrefix(SUBNETS);
  },
});

const leaseKey = (h: Host) => SUBNETS + tb.readSubnetEnv(h)!.subnet.toKey();

const fakes: string[] = [];
/** A lease for a host that does not exist (in a /24 no host holds): enough to see it reach every kernel. */
function fakeLease(): { key: string; value: string; route: string } {
  const taken = new Set(hosts.map(leaseKey));
  let n = 200;
  while (taken.has(`${SUBNETS}10.5.${n}.0-24`) || fakes.includes(`${SUBNETS}10.5.${n}.0-24`)) n++;
  const mac = `02:fa:ce:00:00:${n.toString(16).padStart(2, '0')}`;
  return {
    key: `${SUBNETS}10.5.${n}.0-24`,
    value: `{"PublicIP":"192.0.2.${n}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`,
    route: `10.5.${n}.0/24 via 10.5.${n}.0`,
  };
}

function pingAll(): PingHandle[] {
  const c = hosts.map((h) => h.containers[0]!);
  return [tb.startPing(c[0]!, c[1]!.ip, 20), tb.startPing(c[1]!, c[2]!.ip, 20), tb.startPing(c[2]!, c[0]!.ip, 20)];
}

/**
 * Kills one member under traffic and checks everything a user relies on while it is down: the
 * CLI answers, a new lease reaches every kernel, and every host's lease is renewed through the
 * survivors for longer than its TTL, so none expires.
 */
async function loseMember(member: number, role: string): Promise<void> {
  const keys = hosts.map(leaseKey);
  const pings = pingAll();
  const mark = watch.events().length;
  const killedAt = Date.now();
  await tb.killEtcdMember(member);

  const cliStart = Date.now();
  const r = await tb.weft(['get', 'leases', '-o', 'name']);
  const cliMs = Date.now() - cliStart;
  expect(r.exitCode, r.stderr).toBe(0);
  // Every host's lease, and the fake peers put in earlier phases: nothing more, nothing less.
  const listed = r.stdout.split('\n').filter((l) => l.trim()).map((l) => l.replace(/^.*\//, '')).sort();
  expect(listed).toEqual([...keys, ...fakes].map((k) => k.slice(SUBNETS.length)).sort());

  const fake = fakeLease();
  fakes.push(fake.key);
  expect((await tb.etcdctl(['put', fake.key, fake.value])).exitCode).toBe(0);
  const t0 = Date.now();
  await poll(async () => (await Promise.all(hosts.map((h) => kernelState(h)))).every((s) => s.routes.includes(fake.route)), {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: `${fake.route} on every host`,
  });
  const reachMs = Date.now() - t0;

  // The outage outlives the TTL: a lease not renewed through the survivors would expire by now.
  // Time passing is the scenario; the renewals it must contain are checked below.
  const left = killedAt + LEASE_TTL_MS + 2000 - Date.now();
  if (left > 0) await new Promise((res) => setTimeout(res, left));
  const events = watch.events().slice(mark);
  const traffic = await Promise.all(pings.map((p) => p.stop()));
  const received = traffic.reduce((s, t) => s + t.received, 0);
  const lost = traffic.reduce((s, t) => s + t.lost, 0);
  const renewals = keys.map((k) => events.filter((e) => e === `PUT ${k}`).length);
  console.log(
    `${role} killed: ${received} pings answered, ${lost} lost; weft get leases answered in ${cliMs} ms; ` +
      `a new lease reached every kernel in ${reachMs} ms; renewals per host in ${Date.now() - killedAt} ms: ${renewals.join('/')}`,
  );

  expect(lost).toBe(0);
  expect(received).toBeGreaterThan(500);
  expect(events).toContain(`PUT ${fake.key}`); // the watch itself lived through the kill
  expect(events.filter((e) => e.startsWith('DELETE'))).toEqual([]);
  for (const n of renewals) expect(n).toBeGreaterThanOrEqual(1);
  for (const h of hosts) expect(h.agent!.status, `agent on ${h.name}`).toBeUndefined();
  const live = await tb.etcdctl(['get', '--prefix', '--keys-only', SUBNETS]);
  for (const k of keys) expect(live.stdout).toContain(k);
}

describe('a 3-member etcd cluster under a running overlay', () => {
  it('loses the leader without a lost packet, lease or CLI answer, and takes it back', async () => {
    const leader = await tb.etcdLeader();
    await loseMember(leader, `leader (member ${leader})`);
    const newLeader = await tb.etcdLeader();
    expect(newLeader).not.toBe(leader);
    await tb.startEtcdMember(leader);
    // Back as a member that serves: all three agree on one leader again.
    expect([0, 1, 2]).toContain(await tb.etcdLeader());
  });

  it('loses a follower without a lost packet, lease or CLI answer', async () => {
    const leader = await tb.etcdLeader();
    const follower = (leader + 1) % 3;
    await loseMember(follower, `follower (member ${follower})`);
    expect(await tb.etcdLeader()).toBe(leader);
  });
});
