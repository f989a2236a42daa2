// host-gw and vxlan directRouting end to end, with real agents in host namespaces.
import { describe, expect, it } from 'vitest';
import { execIn } from '../../src/testbed/netns.js';
import type { Host, Testbed } from '../../src/testbed/topology.js';
import { expectFullMesh, joinHost, kernelState, networkYaml, testbedFor, withNetwork } from './helpers.js';

async function uplinkRoutes(host: Host): Promise<string[]> {
  const r = await execIn(host.ns, 'ip', ['-json', 'route', 'show', 'dev', 'eth0', 'proto', '119']);
  return (JSON.parse(r.stdout || '[]') as { dst: string; gateway?: string }[]).map((x) => `${x.dst} via ${x.gateway}`).sort();
}

describe('host-gw backend', () => {
  let tb: Testbed;
  testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml({ backend: 'host-gw' })) });

  it('routes each peer subnet via the peer public IP on the uplink, and every container reaches every other', async () => {
    for (const i of [1, 2, 3]) await joinHost(tb, i);
    await expectFullMesh(tb);
    for (const h of tb.hosts.values()) {
      const env = tb.readSubnetEnv(h)!;
      expect(env.mtu).toBe(1500); // no encapsulation: the uplink's MTU
      const expected = [...tb.hosts.values()]
        .filter((p) => p !== h)
        .map((p) => `${tb.readSubnetEnv(p)!.subnet} via ${p.ip}`)
        .sort();
      expect(await uplinkRoutes(h)).toEqual(expected);
      expect((await execIn(h.ns, 'ip', ['link', 'show', 'flannel.1'])).exitCode).not.toBe(0);
    }
  });
});

describe('vxlan with directRouting on a mixed underlay', () => {
  let tb: Testbed;
  testbedFor((created) => (tb = created), { setup: withNetwork(networkYaml({ extraBackend: '    directRouting: true\n' })) });

  it('routes on-link peers directly and the rest over vxlan', async () => {
    await joinHost(tb, 1);
    await joinHost(tb, 2);
    await joinHost(tb, 3, [], { segment: 1 }); // 198.51.100.3: not on-link for h1 and h2
    await expectFullMesh(tb);
    const [h1, h2, h3] = [1, 2, 3].map((i) => tb.host(i));
    const subnet = (h: Host) => tb.readSubnetEnv(h)!.subnet;
    expect(await uplinkRoutes(h1!)).toEqual([`${subnet(h2!)} via ${h2!.ip}`]);
    const overlay = await kernelState(h1!);
    expect(overlay.routes).toEqual([`${subnet(h3!)} via ${subnet(h3!).network}`]);
    expect(overlay.fdb).toHaveLength(1);
    expect(await uplinkRoutes(h3!)).toEqual([]);
    expect((await kernelState(h3!)).routes).toHaveLength(2);
  });
});
