// `weft serve`: flags (named as kube-apiserver names them), the store, the certificate, the
// users, the server; runs until SIGTERM or SIGINT.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { ETCD_FLAG_OPTIONS, EtcdFlagError, PasswordFileError, weftEtcdConnection } from '../store/etcd-flags.js';
import { SERVE_HELP } from './help.js';
import { createLogger, LEVELS, type Level, type Logger } from '../log.js';
import { ResourceStore } from '../control/resources.js';
import { Store } from '../store/store.js';
import { Authenticator, generatedAdmin, TokenFileError, TokenTable } from './auth.js';
import { createApiServer } from './http.js';
import { kubeconfigText, writeKubeconfig } from './kubeconfig.js';
import { selfSignedCertificate } from './tls.js';


const OPTIONS = {
  ...ETCD_FLAG_OPTIONS,
  'bind-address': { type: 'string' },
  'secure-port': { type: 'string' },
  'tls-cert-file': { type: 'string' },
  'tls-private-key-file': { type: 'string' },
  'client-ca-file': { type: 'string' },
  'token-auth-file': { type: 'string' },
  'write-kubeconfig': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ServeOptions {
  store: Store;
  bindAddress?: string;
  /** 0: any free port. */
  port?: number;
  certFile?: string;
  keyFile?: string;
  clientCAFile?: string;
  tokenAuthFile?: string;
  kubeconfigFile?: string;
  log: Logger;
  now?: () => Date;
}

export interface RunningServe {
  url: string;
  port: number;
  /** The certificate clients should trust (the serving certificate). */
  caPem: string;
  /** The generated admin's token, when no token file was given. */
  adminToken?: string;
  kubeconfig: string;
  close(): Promise<void>;
}

export async function startServe(opts: ServeOptions): Promise<RunningServe> {
  const bind = opts.bindAddress ?? '127.0.0.1';
  if ((opts.certFile === undefined) !== (opts.keyFile === undefined)) {
    throw new Error('--tls-cert-file and --tls-private-key-file go together');
  }
  const tls = opts.certFile && opts.keyFile ? { cert: readFileSync(opts.certFile, 'utf8'), key: readFileSync(opts.keyFile, 'utf8') } : await selfSignedCertificate(bind);
  const tokens = opts.tokenAuthFile ? TokenTable.parse(readFileSync(opts.tokenAuthFile, 'utf8'), opts.tokenAuthFile) : new TokenTable();
  const generated = opts.tokenAuthFile ? undefined : generatedAdmin();
  if (generated) tokens.add(generated.token, generated.user);
  const clientCA = opts.clientCAFile ? readFileSync(opts.clientCAFile, 'utf8') : undefined;
  const closing = new AbortController();
  const rs = new ResourceStore(opts.store, opts.now ? { now: opts.now } : {});
  const server = createApiServer(
    { rs, log: opts.log, now: opts.now ?? (() => new Date()), closing: closing.signal },
    new Authenticator(tokens, clientCA !== undefined),
    { ...tls, ...(clientCA ? { clientCA } : {}) },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 6443, bind, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind.includes(':') ? `[${bind}]` : bind;
  const url = `https://${host}:${port}`;
  const admin = generated ?? tokens.adminToken();
  const kubeconfig = kubeconfigText(url, tls.cert, admin ? { name: admin.user.name, token: admin.token } : undefined);
  if (opts.kubeconfigFile) writeKubeconfig(opts.kubeconfigFile, kubeconfig);
  return {
    url,
    port,
    caPem: tls.cert,
    ...(generated ? { adminToken: generated.token } : {}),
    kubeconfig,
    close: async () => {
      closing.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** What `weft serve` needs of the process (the CLI's CliIO fits). */
export interface ServeIO {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
}

export async function runServeCommand(argv: string[], io: ServeIO): Promise<number> {
  let values: { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { type: 'boolean' } ? boolean : string };
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false, strict: true });
    values = parsed.values;
  } catch (err) {
    io.stderr(`error: ${(err as Error).message}\nRun 'weft serve --help' for usage.\n`);
    return 1;
  }
  if (values.help) {
    io.stdout(SERVE_HELP);
    return 0;
  }
  const level = (values['log-level'] ?? 'info') as Level;
  if (!LEVELS.includes(level)) {
    io.stderr(`error: --log-level must be one of ${LEVELS.join(', ')}\n`);
    return 1;
  }
  const port = Number(values['secure-port'] ?? '6443');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.stderr(`error: --secure-port must be a port number, got ${JSON.stringify(values['secure-port'])}\n`);
    return 1;
  }
  const log = createLogger({ level, fields: { component: 'serve' } });
  let store: Store | undefined;
  let running: RunningServe | undefined;
  try {
    // The same connection flags and environment as every command.
    const { etcd, prefix } = weftEtcdConnection(values, io.env);
    store = Store.connect({ ...etcd, prefix, callTimeoutMs: 3000, maxAttempts: 2 });
    running = await startServe({
      store,
      port,
      log,
      ...(values['bind-address'] !== undefined ? { bindAddress: values['bind-address'] } : {}),
      ...(values['tls-cert-file'] !== undefined ? { certFile: values['tls-cert-file'] } : {}),
      ...(values['tls-private-key-file'] !== undefined ? { keyFile: values['tls-private-key-file'] } : {}),
      ...(values['client-ca-file'] !== undefined ? { clientCAFile: values['client-ca-file'] } : {}),
      ...(values['token-auth-file'] !== undefined ? { tokenAuthFile: values['token-auth-file'] } : {}),
      ...(values['write-kubeconfig'] !== undefined ? { kubeconfigFile: values['write-kubeconfig'] } : {}),
    });
  } catch (err) {
    store?.close();
    const known = err instanceof TokenFileError || err instanceof EtcdFlagError || err instanceof PasswordFileError;
    io.stderr(`error: ${known ? (err as Error).message : `cannot start weft serve: ${(err as Error).message}`}\n`);
    return 1;
  }
  log.info('serving the weft.io API', { url: running.url, ...(values['write-kubeconfig'] ? { kubeconfig: values['write-kubeconfig'] } : {}) });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  log.info('stopping', { signal });
  await running.close();
  store.close();
  return 0;
}
