// A throwaway PKI for TLS tests and the testbed: one CA, a server certificate valid for the
// loopback and testbed addresses, and client certificates, made with the openssl CLI. EC P-256
// keys keep generation to a few milliseconds per certificate.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface CertPair {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  /** CA certificate (PEM file path). */
  ca: string;
  server: CertPair;
  client: CertPair;
  /** Another client certificate from the same CA, with its own common name. */
  issueClient(name: string): Promise<CertPair>;
  /** A certificate from an unrelated CA: TLS-valid, but etcd must refuse it. */
  foreignClient: CertPair;
  remove(): void;
}

/** Addresses the server certificate names: loopback and the testbed's etcd addresses (IPv4, and IPv6 for an 'ipv6' testbed). */
export const SERVER_IPS = ['127.0.0.1', '192.0.2.254', '::1', 'fd00:1::254'];
export const SERVER_DNS = ['localhost'];

/** Creates the PKI in dir (made if missing) or in a fresh temp dir; remove() deletes that dir. */
export async function createPki(opts: { dir?: string } = {}): Promise<Pki> {
  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } else {
    dir = mkdtempSync(join(tmpdir(), 'weft-pki-'));
  }
  try {
    const ca = await selfSigned(dir, 'ca', 'weft-test-ca');
    const issue = (name: string, cn: string, kind: 'server' | 'client', issuer = ca) => leaf(dir, name, cn, kind, issuer);
    const server = await issue('server', 'weft-etcd', 'server');
    const client = await issue('client', 'weft-client', 'client');
    const otherCa = await selfSigned(dir, 'other-ca', 'weft-untrusted-ca');
    const foreignClient = await issue('foreign-client', 'weft-client', 'client', otherCa);
    return {
      dir,
      ca: ca.cert,
      server,
      client,
      foreignClient,
      issueClient: (cn) => issue(`client-${cn.replace(/[^a-zA-Z0-9_-]/g, '_')}`, cn, 'client'),
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function newKey(path: string): Promise<void> {
  // PKCS#8 "BEGIN PRIVATE KEY" is understood by both Go (etcd) and grpc-js.
  await execa('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', path]);
}

async function selfSigned(dir: string, name: string, cn: string): Promise<CertPair> {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  await newKey(key);
  await execa('openssl', [
    'req', '-x509', '-new', '-key', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

async function leaf(dir: string, name: string, cn: string, kind: 'server' | 'client', ca: CertPair): Promise<CertPair> {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  await newKey(key);
  await execa('openssl', ['req', '-new', '-key', key, '-out', csr, '-subj', `/CN=${cn}`]);
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    // etcd's server certificate is also used as a client certificate between peers.
    `extendedKeyUsage=${kind === 'server' ? 'serverAuth,clientAuth' : 'clientAuth'}`,
  ];
  if (kind === 'server') {
    const sans = [...SERVER_IPS.map((ip) => `IP:${ip}`), ...SERVER_DNS.map((d) => `DNS:${d}`)];
    lines.push(`subjectAltName=${sans.join(',')}`);
  }
  writeFileSync(ext, lines.join('\n') + '\n');
  await execa('openssl', [
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial',
    '-out', cert, '-days', '2', '-extfile', ext,
  ]);
  return { cert, key };
}
