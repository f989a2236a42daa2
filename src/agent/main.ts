// `weft agent`: flags -> Agent, signals, health endpoint, exit codes. The imperative edge.
import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { readHostSnapshot } from '../dataplane/host-snapshot.js';
import { createLogger } from '../log.js';
import { Store } from '../store/store.js';
import { etcd3Module } from '../store/etcd3-module.js';
import { Agent, FatalAgentError } from './agent.js';
import { createBackendFor } from './backend-factory.js';
import { AGENT_USAGE, parseAgentFlags, UsageError, type AgentOptions } from './flags.js';
import { startHealthServer } from './health.js';
import { AgentMetrics } from './metrics.js';
import { weftVersion } from '../version.js';

/**
 * Loads what the agent otherwise loads on first use (etcd3: store/etcd3-module.ts), so that
 * the build's code cache holds that code compiled too (cli/agent-bundle.ts).
 */
export function loadDeferredModules(): void {
  etcd3Module();
}

export async function runAgentCommand(argv: string[]): Promise<number> {
  let options: AgentOptions | 'help' | 'version';
  try {
    options = parseAgentFlags(argv, process.env, (path) => readFileSync(path, 'utf8'));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`weft agent: ${err.message}\nRun 'weft agent --help' for the flags.\n`);
      return 1;
    }
    process.stderr.write(`weft agent: ${(err as Error).message}\n`);
    return 1;
  }
  if (options === 'help') {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (options === 'version') {
    // flanneld prints its version on stderr.
    process.stderr.write(`${weftVersion()}\n`);
    return 0;
  }

  // Every line names the node and network; a person at a terminal gets flat text lines.
  const root = createLogger({
    level: options.logLevel,
    format: options.logFormat ?? (process.stderr.isTTY ? 'text' : 'json'),
    fields: { node: options.nodeName, network: options.network },
  });
  const logger = root.child({ component: 'agent' });
  // Never log the password; the flags object holds it, so log only what is safe.
  logger.info('starting weft agent', {
    endpoints: options.etcd.endpoints.join(','),
    prefix: options.prefix,
    subnetFile: options.subnetFile,
    tls: Boolean(options.etcd.cafile || options.etcd.certfile),
    auth: Boolean(options.etcd.username),
  });
  // flanneld's flags that weft accepts without acting on them, each named once with why.
  for (const notice of options.notices) logger.warn(notice);

  let store: Store;
  try {
    store = Store.connect({ ...options.etcd, prefix: options.prefix, direct: true });
  } catch (err) {
    logger.error('cannot create the etcd client', { err: (err as Error).message });
    return 2;
  }
  const metrics = new AgentMetrics();
  const agent = new Agent({
    options,
    store,
    logger: root,
    metrics,
    readHost: readHostSnapshot,
    createBackend: (settings, selection) => createBackendFor(settings, selection, root.child({ component: 'dataplane' })),
  });

  let health: Server | undefined;
  if (options.healthzPort > 0) {
    try {
      health = await startHealthServer(options.healthzIP, options.healthzPort, agent, metrics);
    } catch (err) {
      root.child({ component: 'health' }).error('cannot listen for health checks', { ip: options.healthzIP, port: options.healthzPort, err: (err as Error).message });
      store.close();
      return 1;
    }
  }

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals > 1) {
      logger.warn('second signal: exiting now', { signal: sig });
      process.exit(130);
    }
    logger.info('shutting down; the lease stays so a restart keeps the subnet', { signal: sig });
    void agent.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let code = 0;
  try {
    await agent.run();
  } catch (err) {
    code = err instanceof FatalAgentError ? 1 : 2;
    logger.error('agent stopped', { err: (err as Error).message });
  } finally {
    await agent.stop();
    health?.close();
    store.close();
  }
  return code;
}
