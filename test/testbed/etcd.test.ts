// What the etcd supervisor knows about etcd (src/testbed/etcd.ts): command lines, endpoint
// status, leader agreement and the auth steps.
import { describe, expect, it } from 'vitest';
import { agreedLeader, etcdAuthSteps, etcdMemberArgs, parseEndpointStatus } from '../../src/testbed/etcd.js';

const members = [0, 1, 2].map((i) => ({ name: `m${i}`, dataDir: `/d${i}`, clientUrl: `http://127.0.0.1:${2379 + 2 * i}`, peerUrl: `http://127.0.0.1:${2380 + 2 * i}` }));

describe('etcd for the testbed and the tests', () => {
  it('builds a member command line: the cluster, then token, timings, logging, TLS and extras', () => {
    const args = etcdMemberArgs(1, members, {
      token: 'tok',
      heartbeatMs: 50,
      tls: { ca: 'ca.pem', cert: 's.pem', key: 's.key', clientCertAuth: true },
      extraArgs: ['--x'],
    });
    expect(args.join(' ')).toBe(
      '--name m1 --data-dir /d1 --listen-client-urls http://127.0.0.1:2381 --advertise-client-urls http://127.0.0.1:2381 ' +
        '--listen-peer-urls http://127.0.0.1:2382 --initial-advertise-peer-urls http://127.0.0.1:2382 ' +
        '--initial-cluster m0=http://127.0.0.1:2380,m1=http://127.0.0.1:2382,m2=http://127.0.0.1:2384 ' +
        '--initial-cluster-token tok --heartbeat-interval 50 --log-level error ' +
        '--cert-file s.pem --key-file s.key --trusted-ca-file ca.pem --client-cert-auth --x',
    );
    expect(etcdMemberArgs(0, members.slice(0, 1), { logArgs: ['--logger', 'zap'] }).slice(-2)).toEqual(['--logger', 'zap']);
    expect(() => etcdMemberArgs(3, members)).toThrow(/no etcd member 3/);
  });

  it('reads endpoint status with exact uint64 ids and finds the leader all members agree on', () => {
    const status = (ep: number, id: string, leader: string) =>
      `{"Endpoint":"http://127.0.0.1:${ep}","Status":{"header":{"cluster_id":1,"member_id":${id},"revision":7},"leader":${leader},"raftIndex":42}}`;
    const big = '10276657743932975437'; // over 2^53: a JS number would round it
    const all = parseEndpointStatus(`[${status(2379, '1', big)},${status(2381, big, big)},${status(2383, '3', big)}]`);
    expect(all[1]).toEqual({ endpoint: 'http://127.0.0.1:2381', memberId: big, leader: big, revision: 7, raftIndex: 42 });
    expect(agreedLeader(all, 3)).toBe('http://127.0.0.1:2381');
    expect(agreedLeader(all.slice(0, 2), 3)).toBeUndefined(); // one member did not answer
    expect(agreedLeader([all[0]!, { ...all[2]!, leader: '1' }], 2)).toBeUndefined(); // an election
    expect(parseEndpointStatus('not json')).toEqual([]);
    expect(parseEndpointStatus('[{"Endpoint":1}]')).toEqual([]);
  });

  it('turns auth on with passwords on stdin only', () => {
    const steps = etcdAuthSteps({ rootPassword: 'rootpw', user: 'u', password: 'pw', role: 'r', prefix: '/p' });
    expect(steps.map((s) => s.args.join(' '))).toEqual([
      'user add root --interactive=false',
      'user grant-role root root',
      'user add u --interactive=false',
      'role add r',
      'role grant-permission r readwrite /p --prefix=true',
      'user grant-role u r',
      'auth enable',
    ]);
    expect(steps.flatMap((s) => (s.input ? [s.input] : []))).toEqual(['rootpw\n', 'pw\n']);
    expect(steps.some((s) => s.args.some((a) => a.includes('pw')))).toBe(false);
  });
});
