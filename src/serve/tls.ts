// The serving certificate: the operator's files, or a self-signed one made at start (with
// openssl, already one of weft's system tools) for the bind address, 127.0.0.1 and localhost.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export async function selfSignedCertificate(bindAddress: string): Promise<{ cert: string; key: string }> {
  const names = new Set(['IP:127.0.0.1', 'DNS:localhost']);
  if (bindAddress && bindAddress !== '0.0.0.0' && bindAddress !== '::') names.add(isIP(bindAddress) ? `IP:${bindAddress}` : `DNS:${bindAddress}`);
  const dir = mkdtempSync(join(tmpdir(), 'weft-serve-cert-'));
  try {
    await execa('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '365',
      '-subj', '/CN=weft-serve',
      '-addext', `subjectAltName=${[...names].join(',')}`,
    ], { stdin: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
