import type { Config } from '../config/index.js';
import type { Logger } from '../observability/logger.js';
import type { KnownKey } from '../security/authenticate.js';
import { createMetrics } from '../observability/metrics.js';
import { openBackends, type Backends } from './backends.js';
import { startApi, startWorkerRole, type RunningRole } from './roles.js';

export type Role = 'all' | 'serve' | 'worker';

export interface Running {
  /** Bound HTTP ports: the API's, or a lone worker's metrics port. */
  ports: number[];
  backends: Backends;
  /** Stops accepting, drains, closes connections. */
  stop(): Promise<void>;
}

/** The composition root of every long-running role: opens backends, starts the parts, stops them in order. */
export async function startAuditgraph(options: {
  role: Role;
  config: Config;
  logger: Logger;
  keys: readonly KnownKey[];
}): Promise<Running> {
  const { role, config, logger } = options;
  const backends = await openBackends(config);
  const metrics = createMetrics();
  metrics.watchQueue(() => backends.queue.stats());
  const parts: RunningRole[] = [];
  let ports: number[] = [];
  try {
    if (role !== 'worker') {
      const api = await startApi({ config, logger, backends, metrics, keys: options.keys });
      ports = api.ports;
      parts.push(api);
    }
    if (role !== 'serve') {
      const worker = await startWorkerRole({
        config,
        logger,
        backends,
        metrics,
        serveMetrics: role === 'worker',
      });
      if (worker.metricsPort !== undefined) ports = [worker.metricsPort];
      parts.push(worker);
    }
  } catch (error) {
    for (const part of parts) await part.stop();
    await backends.close();
    throw error;
  }
  return {
    ports,
    backends,
    async stop() {
      // The API stops accepting first, so the worker drains a queue that no longer grows.
      for (const part of parts) await part.stop();
      await backends.close();
    },
  };
}
