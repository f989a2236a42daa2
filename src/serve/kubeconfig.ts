// --write-kubeconfig: the server's URL, its certificate as the CA to trust, and an admin
// token, so that `kubectl --kubeconfig FILE get networks` works with nothing else set up.
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export function kubeconfigText(server: string, caPem: string, user?: { name: string; token: string }): string {
  const userName = user?.name ?? 'weft';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'weft', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } }],
    users: [{ name: userName, user: user ? { token: user.token } : {} }],
    contexts: [{ name: 'weft', context: { cluster: 'weft', user: userName } }],
    'current-context': 'weft',
  });
}

/** Written owner-only: it holds a token. */
export function writeKubeconfig(file: string, text: string): void {
  writeFileSync(file, text, { mode: 0o600 });
}
