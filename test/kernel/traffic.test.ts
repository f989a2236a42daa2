// Two hosts joined by a veth pair, each with its own vxlan backend: the entries weft programs
// really carry traffic between the overlay addresses (ping inside the namespaces only).
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../src/dataplane/index.js';
import type { Peer, Uplink } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';
import { createTestNetns, type TestNetns } from '../helpers/netns.js';
import { cidr, ip, VXLAN } from './fixture.js';

const spaces: TestNetns[] = [];
afterAll(async () => {
  for (const ns of spaces.splice(0)) await ns.delete();
});

describe('vxlan between two hosts (kernel)', () => {
  it('pings across the overlay once both sides converged, and not after the peer is removed', async () => {
    const a = await createTestNetns('tra');
    spaces.push(a);
    const b = await createTestNetns('trb');
    spaces.push(b);
    await a.ip(['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name]);
    for (const [ns, addr] of [[a, '192.0.2.1/24'], [b, '192.0.2.2/24']] as const) {
      await ns.ip(['addr', 'add', addr, 'dev', 'eth0']);
      await ns.ip(['link', 'set', 'eth0', 'up']);
    }
    const uplink = (addr: string): Uplink => ({ name: 'eth0', index: 0, mtu: 1500, address: ip(addr), prefixLength: 24 });
    const ba = createBackend(VXLAN, uplink('192.0.2.1'), ip('192.0.2.1'), a.runner, silentLogger);
    const bb = createBackend(VXLAN, uplink('192.0.2.2'), ip('192.0.2.2'), b.runner, silentLogger);
    const macA = (await ba.prepare()).vtepMAC;
    const macB = (await bb.prepare()).vtepMAC;
    const peer = (n: number, mac: string | undefined): Peer => ({
      key: `10.5.${n}.0-24`,
      subnet: cidr(`10.5.${n}.0/24`),
      publicIP: ip(`192.0.2.${n}`),
      backendType: 'vxlan',
      vtepMAC: mac,
      vni: 1,
    });
    expect((await ba.reconcile(cidr('10.5.1.0/24'), [peer(2, macB)])).failures).toBe(0);
    expect((await bb.reconcile(cidr('10.5.2.0/24'), [peer(1, macA)])).failures).toBe(0);

    const ping = () => execa('ip', ['netns', 'exec', a.name, 'ping', '-c', '1', '-W', '2', '10.5.2.0'], { reject: false });
    const ok = await ping();
    expect(ok.exitCode, String(ok.stdout)).toBe(0);

    expect((await ba.reconcile(cidr('10.5.1.0/24'), [])).operations).toBe(3);
    expect((await ping()).exitCode).not.toBe(0);
  });
});
