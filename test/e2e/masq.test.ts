// --ip-masq with real agents: a container on a host running with it reaches an address
// outside the overlay (the underlay's own, which has no route back to containers); one on a
// host without it does not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import { Testbed, UNDERLAY_IP } from '../../src/testbed/topology.js';
import { applyYaml, joinHost, networkYaml } from './helpers.js';

let tb: Testbed;
beforeAll(async () => {
  tb = await Testbed.create();
  await applyYaml(tb, 'network', networkYaml());
});
afterAll(async () => {
  await tb?.teardown();
});

describe('--ip-masq', () => {
  it('masquerades container traffic leaving the overlay, and only on the host that asks for it', async () => {
    const masq = await joinHost(tb, 1, ['--ip-masq']);
    const plain = await joinHost(tb, 2);
    expect(tb.readSubnetEnv(masq.host)?.ipMasq).toBe(true);
    expect(tb.readSubnetEnv(plain.host)?.ipMasq).toBe(false);
    // The rules land shortly after the lease: poll for the first answer.
    await tb.waitReachable(masq.container, UNDERLAY_IP, 10_000);
    expect((await tb.ping(plain.container, UNDERLAY_IP, { count: 2, waitSec: 1 })).received).toBe(0);
    // Container to container still flows (those packets RETURN before the MASQUERADE rule).
    await tb.waitReachable(masq.container, plain.container.ip, 10_000);
    const rules = await execIn(masq.host.ns, 'iptables', ['-w', '-t', 'nat', '-S']);
    expect(rules.stdout).toMatch(/-A POSTROUTING -m comment --comment "weft masquerade" -j WEFT-POSTRTG/);
    expect((await execIn(plain.host.ns, 'iptables', ['-w', '-t', 'nat', '-S'])).stdout).not.toMatch(/WEFT-POSTRTG/);
  });
});
