import { readFileSync } from 'node:fs';
import type { Config } from '../config/index.js';
import { createGraphQLRoutes } from '../graphql/server.js';
import { createHttpApp } from '../http/server.js';
import { createRestRoutes } from '../http/routes.js';
import { createEventQueries } from '../query/event-queries.js';
import { createIngestService } from '../ingest/ingest-service.js';
import type { Logger } from '../observability/logger.js';
import { createAuthenticator, type KnownKey } from '../security/authenticate.js';
import { createWorker } from '../worker/worker.js';
import { consumerNameFor, type Backends } from './backends.js';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface RunningRole {
  stop(): Promise<void>;
}

/** The API role: REST shim (and later GraphQL) on every configured port. */
export async function startApi(deps: {
  config: Config;
  logger: Logger;
  backends: Backends;
  keys: readonly KnownKey[];
}): Promise<RunningRole & { ports: number[] }> {
  const { config, logger, backends } = deps;
  const ingest = createIngestService({ queue: backends.queue, loggingEnabled: config.loggingEnabled });
  const events = createEventQueries({ store: backends.store });
  const authenticator = createAuthenticator(deps.keys);
  const graphql = await createGraphQLRoutes(
    { authenticator, ingest, events },
    {
      logger,
      introspection: config.graphql.introspection,
      landingPage: config.environment !== 'production',
    },
  );
  const app = createHttpApp({
    routes: [
      ...graphql.routes,
      ...createRestRoutes({
        ingest,
        events,
        version: VERSION,
        readiness: [
          { name: 'database', check: async () => void (await backends.db.query('SELECT 1')) },
          { name: 'queue', check: async () => void (await backends.queue.stats()) },
        ],
      }),
    ],
    authenticator,
    logger,
    maxBodyBytes: config.http.maxBodyBytes,
  });
  const ports = await app.listen(config.http.ports, config.http.host);
  logger.info({ ports, host: config.http.host }, 'API listening');
  return {
    ports,
    async stop() {
      await app.close(config.shutdownTimeoutMs);
      await graphql.stop();
    },
  };
}

/** The worker role: queue to database. */
export function startWorkerRole(deps: { config: Config; logger: Logger; backends: Backends }): RunningRole {
  const worker = createWorker({
    queue: deps.backends.queue,
    store: deps.backends.store,
    logger: deps.logger.child({ role: 'worker' }),
    consumerName: consumerNameFor(deps.config),
    batchSize: deps.config.worker.batchSize,
    claimIdleMs: deps.config.worker.claimIdleMs,
    drainQueueOnStop: deps.config.queue.kind === 'memory',
  });
  worker.start();
  return { stop: () => worker.stop(deps.config.shutdownTimeoutMs) };
}
