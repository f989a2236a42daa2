// Who may do what through weft serve, with the real kubectl: kube-apiserver's token file and
// client certificates (user = CN, groups = O); weft:admins write, others only read, and a
// request without credentials (or with a wrong token) is refused.
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { kubeconfigText } from '../../src/serve/kubeconfig.js';
import { createPki, type CertPair, type Pki } from '../../src/testbed/pki.js';
import { useEtcd } from '../helpers/etcd.js';
import { kubectlFor } from '../helpers/kubectl.js';
import { apiRequest } from './http-client.js';
import { useServe } from './serve-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-serve-auth-'));
const tokens = join(dir, 'tokens.csv');
writeFileSync(tokens, ['# token,user,uid,groups', 'admin-token,ada,1,"weft:admins,ops"', 'reader-token,rob,2,viewers', ''].join('\n'));
let pki: Pki;
const fx = useEtcd('auth');
const s = useServe(fx, 'auth', {
  tokenAuthFile: tokens,
  get clientCAFile() {
    return pki.ca;
  },
});
// The PKI must exist before the server starts (useServe's beforeAll runs after this one).
await (async () => {
  pki = await createPki({ dir: join(dir, 'pki') });
})();
afterAll(() => {
  pki?.remove();
  rmSync(dir, { recursive: true, force: true });
});

const NET = `apiVersion: weft.io/v1alpha1
kind: Network
metadata:
  name: auth
spec:
  cidr: 10.60.0.0/16
  backend:
    type: host-gw
`;

function anonymous() {
  return kubectlFor(kubeconfigText(s.serve.url, s.serve.caPem));
}

async function withCert(cert: CertPair, args: string[]) {
  const k = anonymous();
  try {
    return await k.run(['--client-certificate', cert.cert, '--client-key', cert.key, ...args]);
  } finally {
    k.remove();
  }
}

describe('weft serve authentication and authorization', () => {
  it('writes the first admin of the token file into its kubeconfig; admins may write', async () => {
    expect(s.serve.kubeconfig).toContain('token: admin-token');
    const r = await s.kubectl.run(['apply', '-f', '-'], { input: NET });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('network.weft.io/auth created');
  });

  it('lets a reader read and refuses its writes with 403', async () => {
    const get = await s.kubectl.run(['--token', 'reader-token', 'get', 'networks', '-o', 'name']);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toBe('network.weft.io/auth');
    const write = await s.kubectl.run(['--token', 'reader-token', 'delete', 'network', 'auth']);
    expect(write.code).toBe(1);
    expect(write.stderr).toContain('Error from server (Forbidden): networks.weft.io "auth" is forbidden: User "rob" cannot delete resource "networks" in API group "weft.io" at the cluster scope');
    const create = await s.kubectl.run(['--token', 'reader-token', 'apply', '-f', '-'], { input: NET.replace('name: auth', 'name: auth2') });
    expect(create.code).toBe(1);
    expect(create.stderr).toContain('User "rob" cannot create resource "networks"');
    expect(await s.cli.get('/auth2/config')).toBeUndefined();
  });

  it('refuses requests without credentials or with an unknown token (401)', async () => {
    // No Authorization header at all (kubectl would prompt for a password instead).
    const bare = await apiRequest(s.serve.url, s.serve.caPem, 'GET', '/apis/weft.io/v1alpha1/networks');
    expect(bare.status).toBe(401);
    expect(bare.json()).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
    const k = anonymous();
    try {
      const r = await k.run(['--token', 'not-a-token', 'get', 'networks']);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('You must be logged in to the server');
    } finally {
      k.remove();
    }
  });

  it('takes the user from a client certificate\'s CN and its groups from O', async () => {
    const admin = await pki.issueClient('carol/O=weft:admins');
    const reader = await pki.issueClient('dave');
    const del = await withCert(reader, ['delete', 'network', 'auth']);
    expect(del.stderr).toContain('User "dave" cannot delete resource "networks"');
    const ok = await withCert(admin, ['label', 'network', 'auth', 'owner=carol']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse((await s.cli.get('/_weft/networks/auth'))!.value).labels).toEqual({ owner: 'carol' });
    // A certificate from another CA is no identity at all.
    const foreign = await withCert(pki.foreignClient, ['get', 'networks']);
    expect(foreign.stderr).toContain('You must be logged in to the server');
  });
});
