// The synthetic fleet the benches write: peer i's lease key, value (Flannel's exact bytes) and
// kernel entries. Subnets are /24s of 10.0.0.0/8, public IPs come from 198.18.0.0/15 (the
// benchmarking range, never reachable here), VTEP MACs are locally administered.
export const NETWORK_JSON = '{"Network":"10.0.0.0/8","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}';

const hex = (n) => (n & 255).toString(16).padStart(2, '0');

/** 10.(1 + i/256).(i%256).0/24: peer 0 is 10.1.0.0/24; up to 65,279 peers. */
export function subnetOf(i) {
  return `10.${1 + (i >> 8)}.${i & 255}.0/24`;
}

export function leaseKeyOf(i) {
  return subnetOf(i).replace('/', '-');
}

export function publicIPOf(i) {
  const n = i + 1;
  return `198.${18 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** variant > 0 gives the same peer a new VTEP MAC (a recreated device). */
export function macOf(i, variant = 0) {
  return `02:${hex(variant)}:${hex(i >> 24)}:${hex(i >> 16)}:${hex(i >> 8)}:${hex(i)}`;
}

export function leaseValueOf(i, variant = 0) {
  return `{"PublicIP":"${publicIPOf(i)}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${macOf(i, variant)}"}}`;
}

/** The batch lines the kernel needs for peers [0, n): the same lines weft's planner renders. */
export function batchLines(n, dev = 'flannel.1') {
  const ip = [];
  const bridge = [];
  for (let i = 0; i < n; i++) {
    const net = subnetOf(i);
    const gw = net.split('/')[0];
    ip.push(`neigh replace ${gw} lladdr ${macOf(i)} dev ${dev} nud permanent`);
    bridge.push(`fdb replace ${macOf(i)} dev ${dev} dst ${publicIPOf(i)} self permanent`);
  }
  for (let i = 0; i < n; i++) {
    const net = subnetOf(i);
    ip.push(`route replace ${net} via ${net.split('/')[0]} dev ${dev} onlink proto 119`);
  }
  return { ip, bridge };
}
