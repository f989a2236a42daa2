// A `weft serve` in this process on a free port, bound to a fresh prefix of the test file's
// etcd, with kubectl pointed at it through the kubeconfig the server writes.
import { afterAll, beforeAll } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { startServe, type RunningServe, type ServeOptions } from '../../src/serve/main.js';
import { Store } from '../../src/store/store.js';
import { cliEnv } from '../helpers/cli-env.js';
import type { EtcdFixture } from '../helpers/etcd.js';
import { kubectlFor, requireKubectl, type Kubectl } from '../helpers/kubectl.js';

export interface ServeFixture {
  readonly serve: RunningServe;
  readonly kubectl: Kubectl;
  readonly cli: ReturnType<typeof cliEnv>;
  readonly store: Store;
}

export function useServe(fx: EtcdFixture, label: string, opts: Partial<ServeOptions> = {}): ServeFixture {
  let serve: RunningServe | undefined;
  let kubectl: Kubectl | undefined;
  let store: Store | undefined;
  let cli: ReturnType<typeof cliEnv> | undefined;
  beforeAll(async () => {
    requireKubectl();
    cli = cliEnv(fx, label);
    store = Store.connect({ endpoints: [fx.etcd.endpoint], prefix: cli.prefix, callTimeoutMs: 2000, maxAttempts: 1 });
    serve = await startServe({ store, port: 0, log: silentLogger, ...opts });
    kubectl = kubectlFor(serve.kubeconfig);
  });
  afterAll(async () => {
    await serve?.close();
    store?.close();
    kubectl?.remove();
  });
  return {
    get serve() {
      return serve!;
    },
    get kubectl() {
      return kubectl!;
    },
    get cli() {
      return cli!;
    },
    get store() {
      return store!;
    },
  };
}
