import { describe, expect, it } from 'vitest';
import { decodeLease, encodeLease, parseLeaseKey } from '../../src/api/lease.js';

describe('lease value codec', () => {
  it('writes flannel vxlan bytes exactly, with the node name trailing', () => {
    const v = { publicIP: '192.168.64.3', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' } };
    expect(encodeLease(v)).toBe(
      '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}',
    );
    expect(encodeLease({ ...v, nodeName: 'h1' })).toMatch(/,"NodeName":"h1"}$/);
  });

  it('writes flannel host-gw and udp bytes exactly', () => {
    expect(encodeLease({ publicIP: '10.0.0.1', backendType: 'host-gw' })).toBe(
      '{"PublicIP":"10.0.0.1","PublicIPv6":null,"BackendType":"host-gw"}',
    );
    expect(encodeLease({ publicIP: '1.2.3.4' })).toBe('{"PublicIP":"1.2.3.4","PublicIPv6":null}');
  });

  it('round-trips what flanneld writes', () => {
    const text = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';
    const d = decodeLease(text);
    expect(d.ok && encodeLease(d.value)).toBe(text);
  });

  it.each([
    ['not json', 'nope'],
    ['array', '[]'],
    ['newline in PublicIP', '{"PublicIP":"10.0.0.1\\nroute del default"}'],
    ['space in VtepMAC', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff dev lo"}}'],
    ['IPv6 as PublicIP', '{"PublicIP":"fd00::1"}'],
    ['VNI as string', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":"1","VtepMAC":"aa:bb:cc:dd:ee:f0"}}'],
    ['multicast MAC', '{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"01:00:5e:00:00:01"}}'],
    ['huge value', JSON.stringify({ PublicIP: '10.0.0.1', pad: 'x'.repeat(1 << 20) })],
  ])('refuses %s', (_name, text) => {
    expect(decodeLease(text).ok).toBe(false);
  });

  it('parses flannel lease keys, including dual-stack ones', () => {
    expect(parseLeaseKey('10.5.52.0-24')?.ipv4?.toString()).toBe('10.5.52.0/24');
    expect(parseLeaseKey('10.5.52.0-24&fd00:5:0:34::-64')?.ipv4?.toString()).toBe('10.5.52.0/24');
    expect(parseLeaseKey('10.5.52.1-24')).toBeUndefined();
    expect(parseLeaseKey('junk')).toBeUndefined();
  });
});
