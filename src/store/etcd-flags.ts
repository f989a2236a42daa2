// The etcd connection flags, read one way for every command (`weft agent`, `weft get`, ...):
// each caller says where a flag's value comes from (its command line, then its environment),
// this decides what the values mean and refuses combinations that cannot work.
import { namedError } from '../api/errors.js';
import { readFileSync } from 'node:fs';
import { DEFAULT_ENDPOINTS, parseEndpoints, type EtcdOptions } from './client.js';
import { DEFAULT_PREFIX } from './layout.js';

export const ETCD_FLAGS = [
  'etcd-endpoints',
  'etcd-prefix',
  'etcd-cafile',
  'etcd-certfile',
  'etcd-keyfile',
  'etcd-username',
  'etcd-password',
  'etcd-password-file',
] as const;
export type EtcdFlag = (typeof ETCD_FLAGS)[number];

/** The etcd flags as node:util parseArgs options: every command's own table spreads this in. */
export const ETCD_FLAG_OPTIONS = Object.fromEntries(ETCD_FLAGS.map((f) => [f, { type: 'string' as const }])) as Record<
  EtcdFlag,
  { type: 'string' }
>;

/** A flag value that cannot be used: the command's usage is wrong. */
export class EtcdFlagError extends namedError('EtcdFlagError') {}

/** The password file could not be read: like an unreachable etcd, not a usage mistake. */
export class PasswordFileError extends namedError('PasswordFileError') {}

export interface EtcdConnection {
  etcd: EtcdOptions;
  prefix: string;
}

/**
 * `value(flag)` gives the flag's value (command line first, then whatever environment the
 * command honours), or undefined when unset. `readFile` reads the password file.
 */
export function parseEtcdFlags(value: (flag: EtcdFlag) => string | undefined, readFile: (path: string) => string): EtcdConnection {
  const endpoints = parseEndpoints(value('etcd-endpoints') ?? DEFAULT_ENDPOINTS.join(','));
  if (endpoints.length === 0) throw new EtcdFlagError('--etcd-endpoints is empty');
  for (const e of endpoints) {
    if (!/^https?:\/\/[^\s/]+$/.test(e.replace(/\/+$/, ''))) throw new EtcdFlagError(`--etcd-endpoints: "${e}" is not an http(s)://host:port URL`);
  }
  let password = value('etcd-password');
  const passwordFile = value('etcd-password-file');
  if (password !== undefined && passwordFile !== undefined) {
    throw new EtcdFlagError('--etcd-password and --etcd-password-file are mutually exclusive');
  }
  if (passwordFile !== undefined) {
    try {
      password = readFile(passwordFile).replace(/\r?\n$/, '');
    } catch (err) {
      throw new PasswordFileError(`--etcd-password-file: cannot read ${passwordFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const username = value('etcd-username');
  if (password !== undefined && username === undefined) throw new EtcdFlagError('--etcd-password needs --etcd-username');
  const certfile = value('etcd-certfile');
  const keyfile = value('etcd-keyfile');
  if ((certfile === undefined) !== (keyfile === undefined)) {
    throw new EtcdFlagError('--etcd-certfile and --etcd-keyfile must be given together');
  }
  const etcd: EtcdOptions = { endpoints };
  const cafile = value('etcd-cafile');
  if (cafile) etcd.cafile = cafile;
  if (certfile) etcd.certfile = certfile;
  if (keyfile) etcd.keyfile = keyfile;
  if (username) etcd.username = username;
  if (password !== undefined) etcd.password = password;
  return { etcd, prefix: value('etcd-prefix') ?? DEFAULT_PREFIX };
}

/**
 * The etcd connection of `weft COMMAND` and `weft serve`: each flag from the command line,
 * else $WEFT_ETCD_ENDPOINTS, and $WEFT_ETCD_PASSWORD when no password file is given, so that
 * the password may come from a file or the environment and never shows in `ps`.
 */
export function weftEtcdConnection(
  values: { readonly [F in EtcdFlag]?: string | undefined },
  env: Readonly<Record<string, string | undefined>>,
): EtcdConnection {
  return parseEtcdFlags(
    (flag) =>
      values[flag] ??
      (flag === 'etcd-endpoints' ? env.WEFT_ETCD_ENDPOINTS : undefined) ??
      (flag === 'etcd-password' && values['etcd-password-file'] === undefined ? env.WEFT_ETCD_PASSWORD : undefined),
    (path) => readFileSync(path, 'utf8'),
  );
}

/** The etcd flags in every command's help text (`weft COMMAND --help`, `weft serve --help`). */
export const GLOBAL_FLAGS = `Global flags (any command):
      --etcd-endpoints URLS   comma-separated etcd endpoints (default http://127.0.0.1:2379,
                              or $WEFT_ETCD_ENDPOINTS)
      --etcd-prefix PATH      etcd prefix of the Flannel layout (default /coreos.com/network)
      --etcd-cafile FILE      CA bundle for TLS to etcd
      --etcd-certfile FILE    client certificate for TLS to etcd
      --etcd-keyfile FILE     client key for TLS to etcd
      --etcd-username NAME    etcd user
      --etcd-password PASS    etcd password (visible in ps: prefer the two below)
      --etcd-password-file F  read the etcd password from a file
                              ($WEFT_ETCD_PASSWORD is read when neither is given)
  -h, --help                  show help
`;
