// The etcd connection flags every command shares (`weft apply/get/...` and `weft serve`),
// turned into Store options in one place.
import { readFileSync } from 'node:fs';
import type { EtcdOptions } from '../store/client.js';
import { DEFAULT_ENDPOINTS, parseEndpoints } from '../store/client.js';
import { DEFAULT_PREFIX } from '../store/layout.js';

export const ETCD_FLAG_OPTIONS = {
  'etcd-endpoints': { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'etcd-cafile': { type: 'string' },
  'etcd-certfile': { type: 'string' },
  'etcd-keyfile': { type: 'string' },
  'etcd-username': { type: 'string' },
  'etcd-password': { type: 'string' },
  'etcd-password-file': { type: 'string' },
} as const;

export type EtcdFlagValues = { [K in keyof typeof ETCD_FLAG_OPTIONS]?: string };

/**
 * Store options from the flags. The password may come from a file or the environment, so
 * that it never shows in `ps`.
 */
export function etcdStoreOptions(values: EtcdFlagValues, env: Record<string, string | undefined>): EtcdOptions & { prefix: string } {
  const endpoints = parseEndpoints(values['etcd-endpoints'] ?? env.WEFT_ETCD_ENDPOINTS ?? DEFAULT_ENDPOINTS.join(','));
  const passwordFile = values['etcd-password-file'];
  const password =
    values['etcd-password'] ??
    (passwordFile ? readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '') : undefined) ??
    env.WEFT_ETCD_PASSWORD;
  return {
    endpoints,
    prefix: values['etcd-prefix'] ?? DEFAULT_PREFIX,
    ...(values['etcd-cafile'] ? { cafile: values['etcd-cafile'] } : {}),
    ...(values['etcd-certfile'] ? { certfile: values['etcd-certfile'] } : {}),
    ...(values['etcd-keyfile'] ? { keyfile: values['etcd-keyfile'] } : {}),
    ...(values['etcd-username'] ? { username: values['etcd-username'] } : {}),
    ...(password !== undefined ? { password } : {}),
  };
}
