// Bench 4, join storm: 250 agents' lease acquisitions (acquireLease, each with its own etcd
// client, in one process in the underlay) started at once. Time until all hold distinct leases,
// retries per acquisition, and etcd requests per lease (from etcd's own /metrics).
//
//   node bench/join-storm.mjs [count]      (default 250)
import { percentile, printResult, printTable, round, withTestbed } from './lib.mjs';

const COUNT = Number(process.argv[2] ?? 250);
// A Kubernetes-style /16 (254 subnets: nearly full at 250 joins) and a roomy /8.
const NETWORKS = [
  { network: '10.244.0.0/16', subnetLen: 24 },
  { network: '10.0.0.0/8', subnetLen: 24 },
];

const results = await withTestbed(async (tb, worker) => {
  const out = [];
  for (const net of NETWORKS) {
    const r = await worker.call('joinStorm', { endpoint: tb.etcdEndpoint, count: COUNT, ...net });
    if (r.acquired !== COUNT || r.distinct !== COUNT || r.keysInEtcd !== COUNT) {
      throw new Error(`join storm on ${net.network}: ${r.acquired} acquired, ${r.distinct} distinct, ${r.keysInEtcd} keys; failures: ${r.failed.join('; ')}`);
    }
    out.push({ ...net, ...r });
  }
  return out;
});

const retries = (r) => r.attempts.map((a) => a - 1);
printTable(`Join storm: ${COUNT} acquisitions at once`, [
  ['network', 'all distinct after ms', 'per lease p50/p99 ms', 'retries mean/p99/max', 'Txn per lease', 'Range per lease', 'LeaseGrant per lease'],
  ...results.map((r) => [
    `${r.network} (/${r.subnetLen})`,
    round(r.totalMs, 0),
    `${round(percentile(r.perLeaseMs, 50), 0)} / ${round(percentile(r.perLeaseMs, 99), 0)}`,
    `${round(retries(r).reduce((a, b) => a + b, 0) / COUNT, 2)} / ${percentile(retries(r), 99)} / ${Math.max(...retries(r))}`,
    round(r.requests.Txn / COUNT, 2),
    round(r.requests.Range / COUNT, 2),
    round(r.requests.LeaseGrant / COUNT, 2),
  ]),
]);
printResult(
  'join-storm',
  results.map((r) => ({
    network: r.network,
    count: COUNT,
    allDistinctMs: round(r.totalMs, 0),
    perLeaseP50Ms: round(percentile(r.perLeaseMs, 50), 0),
    perLeaseP99Ms: round(percentile(r.perLeaseMs, 99), 0),
    retriesMean: round(retries(r).reduce((a, b) => a + b, 0) / COUNT, 2),
    retriesMax: Math.max(...retries(r)),
    txnPerLease: round(r.requests.Txn / COUNT, 2),
    rangePerLease: round(r.requests.Range / COUNT, 2),
    grantPerLease: round(r.requests.LeaseGrant / COUNT, 2),
  })),
);
