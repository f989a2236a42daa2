// The agent reads <prefix>/config exactly as flanneld's parser does (subnet.ParseConfig and
// CheckNetworkConfig, the vxlan backend's VXLANConfig; Go's encoding/json), checked against
// flannel v0.20.2 and v0.28: what flanneld runs with, weft runs with; what flanneld refuses,
// weft refuses with flanneld's reason.
import { describe, expect, it } from 'vitest';
import { decodeFlannelConfig, resolveNetwork } from '../../src/api/network.js';

/** What the agent does with the bytes: the resolved config, or why it waits. */
function agentReads(text: string) {
  const spec = decodeFlannelConfig(text);
  const r = resolveNetwork('default', spec);
  return { spec, config: r.config, problems: r.problems.map((p) => `${p.field}: ${p.message}`) };
}

describe('configs flanneld runs with, the agent runs with', () => {
  it('Backend.MTU is any underlay MTU: 9001 (AWS jumbo frames) is taken, as flanneld does', () => {
    const r = agentReads('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","MTU":9001}}');
    expect(r.problems).toEqual([]);
    expect(r.config!.backend.mtu).toBe(9001);
  });

  it('masks a Network with host bits set (Go net.ParseCIDR), so `weft get` shows the network address', () => {
    const r = agentReads('{"Network":"10.5.3.7/16","Backend":{"Type":"vxlan"}}');
    expect(r.problems).toEqual([]);
    expect(r.spec.cidr).toBe('10.5.0.0/16');
    expect(r.config!.ipv4!.network.toString()).toBe('10.5.0.0/16');
    expect(agentReads('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::1/48","Backend":{"Type":"vxlan"}}').spec.ipv6Cidr).toBe('fd00:5::/48');
  });

  it('SubnetLen null or 0 derives the default; SubnetMin/SubnetMax "0.0.0.0" are unset', () => {
    for (const text of [
      '{"Network":"10.5.0.0/16","SubnetLen":null,"Backend":{"Type":"vxlan"}}',
      '{"Network":"10.5.0.0/16","SubnetLen":0,"SubnetMin":"0.0.0.0","SubnetMax":"0.0.0.0","Backend":{"Type":"vxlan"}}',
    ]) {
      const r = agentReads(text);
      expect(r.problems).toEqual([]);
      const s = r.config!.ipv4!;
      expect([s.subnetLen, s.subnetMin.toString(), s.subnetMax.toString()]).toEqual([24, '10.5.1.0', '10.5.255.0']);
    }
    // *ip.IP6 is a pointer: null and "::" are unset.
    const r6 = agentReads('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:5::/48","IPv6SubnetLen":null,"IPv6SubnetMin":null,"IPv6SubnetMax":"::","Backend":{"Type":"vxlan"}}');
    expect(r6.problems).toEqual([]);
    expect([r6.config!.ipv6!.subnetLen, r6.config!.ipv6!.subnetMin.toString()]).toEqual([64, 'fd00:5:0:1::']);
  });

  it('matches field names in any letter case, the last of two spellings winning (Go encoding/json)', () => {
    const r = agentReads('{"NETWORK":"10.1.0.0/16","network":"10.2.0.0/16","subnetlen":26,"BACKEND":{"tYpE":"vxlan","vni":7,"PORT":4789,"directrouting":true,"Mtu":1400}}');
    expect(r.problems).toEqual([]);
    expect(r.spec).toEqual({ cidr: '10.2.0.0/16', subnetLength: 26, backend: { type: 'vxlan', vni: 7, port: 4789, mtu: 1400, directRouting: true } });
    // Go folds the Kelvin sign to k.
    expect(agentReads('{"Network":"10.5.0.0/16","Bac\u212aend":{"Type":"host-gw"}}').spec.backend.type).toBe('host-gw');
  });

  it('ignores unknown keys, and null where Go leaves the default', () => {
    const r = agentReads('{"Network":"10.5.0.0/16","EnableIPv4":null,"EnableIPv6":null,"Whatever":[1],"Backend":{"Type":"vxlan","VNI":null,"Learning":false,"Other":"x"}}');
    expect(r.problems).toEqual([]);
    expect(r.spec).toEqual({ cidr: '10.5.0.0/16', backend: { type: 'vxlan' } });
  });
});

describe('configs flanneld refuses, the agent refuses with flanneld\'s reason', () => {
  it.each([
    ['VNI as a string', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":"7"}}', 'error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field VXLANConfig.vni of type int'],
    ['Port as a string', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","Port":"4789"}}', 'error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field VXLANConfig.port of type int'],
    ['a fractional MTU', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","MTU":1400.5}}', 'error decoding VXLAN backend config: json: cannot unmarshal number 1400.5 into Go struct field VXLANConfig.mtu of type int'],
    ['DirectRouting as a string', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":"true"}}', 'error decoding VXLAN backend config: json: cannot unmarshal string into Go struct field VXLANConfig.directrouting of type bool'],
    ['no Network', '{"Backend":{"Type":"vxlan"}}', 'please define a correct Network parameter in the flannel config'],
    ['Network without a prefix', '{"Network":"10.5.0.0","Backend":{"Type":"vxlan"}}', 'invalid CIDR address: 10.5.0.0'],
    ['Network null', '{"Network":null,"Backend":{"Type":"vxlan"}}', 'invalid CIDR address: null'],
    ['SubnetLen as a string', '{"Network":"10.5.0.0/16","SubnetLen":"24"}', 'json: cannot unmarshal string into Go struct field Config.SubnetLen of type uint'],
    ['a negative SubnetLen', '{"Network":"10.5.0.0/16","SubnetLen":-1}', 'json: cannot unmarshal number -1 into Go struct field Config.SubnetLen of type uint'],
    ['SubnetMin not an address', '{"Network":"10.5.0.0/16","SubnetMin":"10.5.1"}', 'Invalid IP address format'],
    ['Backend as a string', '{"Network":"10.5.0.0/16","Backend":"vxlan"}', 'error decoding Backend property of config: json: cannot unmarshal string into Go value of type struct { Type string }'],
    ['a config that is a list', '[]', 'json: cannot unmarshal array into Go value of type subnet.Config'],
  ])('%s', (_name, text, reason) => {
    expect(() => decodeFlannelConfig(text)).toThrow(reason);
  });
});
