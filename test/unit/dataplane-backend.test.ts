import { describe, expect, it } from 'vitest';
import { Ipv4 } from '../../src/alloc/cidr.js';
import { createBackend, DataplaneError, hostRunner } from '../../src/dataplane/index.js';
import { IpRunner } from '../../src/dataplane/ipcmd.js';
import type { BackendSettings, Uplink } from '../../src/dataplane/types.js';
import { silentLogger } from '../../src/log.js';

const ip = Ipv4.parse('192.0.2.1')!;
const uplink: Uplink = { name: 'eth0', index: 2, mtu: 1500, address: ip, prefixLength: 24 };
const vxlan: BackendSettings = { type: 'vxlan', vni: 1, port: 0, directRouting: false, gbp: false };

describe('creating a backend', () => {
  it('refuses values that could not be rendered safely into a batch line', () => {
    const make = (s: Partial<BackendSettings>, u: Partial<Uplink> = {}) => () =>
      createBackend({ ...vxlan, ...s }, { ...uplink, ...u }, ip, hostRunner, silentLogger);
    expect(make({}, { name: 'eth0 up\nlink del eth0' })).toThrow(DataplaneError);
    expect(make({}, { name: '' })).toThrow(/uplink name/);
    expect(make({ vni: 1 << 24 })).toThrow(/VNI/);
    expect(make({ vni: 1.5 })).toThrow(/VNI/);
    expect(make({ port: 70000 })).toThrow(/port/);
    expect(make({ mtu: 20 })).toThrow(/MTU/);
    expect(make({ type: 'udp' as 'vxlan' })).toThrow(/unsupported backend type/);
    expect(make({})).not.toThrow();
  });

  it('refuses namespace names that are not plain names, and batch lines with line breaks', async () => {
    expect(() => new IpRunner({ netns: '../etc' })).toThrow(/namespace/);
    expect(() => new IpRunner({ netns: 'a b' })).toThrow(/namespace/);
    const runner = new IpRunner({ netns: 'weft-never-created' });
    await expect(runner.batch('ip', ['route show', 'route del default\nlink del eth0'])).rejects.toThrow(/line break/);
    expect(runner.runs).toBe(0);
  });
});
