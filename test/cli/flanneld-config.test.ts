// A config flanneld's operators wrote (etcdctl, flanneld's own docs) is shown by `weft get`
// and survives `weft get -o yaml | weft apply -f -`: apply may be strict with what a person
// writes, but never with what flanneld runs with.
import { describe, expect, it } from 'vitest';
import { cliEnv } from '../helpers/cli-env.js';
import { useEtcd } from '../helpers/etcd.js';

describe('configs written for flanneld, through weft get and weft apply', () => {
  const fx = useEtcd();

  it.each<[string, string, { cidr: string; mtu?: number; vni?: number }]>([
    ['AWS jumbo underlay MTU', '{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","MTU":9001}}', { cidr: '10.5.0.0/16', mtu: 9001 }],
    ['host bits, SubnetLen null, SubnetMin 0.0.0.0, keys in other cases', '{"network":"10.5.3.7/16","SUBNETLEN":null,"SubnetMin":"0.0.0.0","backend":{"type":"vxlan","vni":3}}', { cidr: '10.5.0.0/16', vni: 3 }],
  ])('%s', async (_name, bytes, want) => {
    const e = cliEnv(fx);
    await fx.admin.client.put(`${e.prefix}/config`).value(bytes);
    const shown = await e.run('get', 'network', 'default', '-o', 'yaml');
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(`cidr: ${want.cidr}`);
    if (want.mtu) expect(shown.stdout).toContain(`mtu: ${want.mtu}`);
    const applied = await e.pipe(shown.stdout, 'apply', '-f', '-');
    expect(applied.code, applied.stderr).toBe(0);
    // What apply wrote back is read by flanneld (and the agent) as the same network.
    const again = await e.run('get', 'network', 'default', '-o', 'json');
    const spec = JSON.parse(again.stdout).spec;
    expect(spec.cidr).toBe(want.cidr);
    expect(spec.backend.mtu).toBe(want.mtu);
    expect(spec.backend.vni ?? 1).toBe(want.vni ?? 1);
  });

  it('shows flanneld\'s reason for a config flanneld refuses ("VNI":"7"), where weft used VNI 1', async () => {
    const e = cliEnv(fx);
    await fx.admin.client.put(`${e.prefix}/config`).value('{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":"7"}}');
    const r = await e.run('get', 'networks', '-o', 'wide');
    expect(r.stdout).toContain('cannot unmarshal string into Go struct field VXLANConfig.vni of type int');
  });
});
