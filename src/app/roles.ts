import { readFileSync } from 'node:fs';
import { createAnalyticsService } from '../analytics/analytics-service.js';
import type { Config } from '../config/index.js';
import { createAnalyticsRoutes } from '../http/analytics-routes.js';
import { createDeadLetterRoutes } from '../http/dead-letter-routes.js';
import { createIntegrityRoutes } from '../http/integrity-routes.js';
import type { SigningKey } from '../integrity/keys.js';
import { startIntegrityLoops } from '../integrity/loops.js';
import { createIntegrityService } from '../integrity/service.js';
import { createIntegrityStore } from '../store/integrity-store.js';
import { createAnalyticsStore } from '../store/analytics-store.js';
import { createFieldLimiter } from '../graphql/limits.js';
import type { GraphQLServices } from '../graphql/context.js';
import { DEFAULT_QUERY_LIMITS } from '../graphql/limits.js';
import { createFormatError, createGraphQLRoutes, createSchema } from '../graphql/server.js';
import { createGraphQLWebSocket } from '../graphql/websocket.js';
import { createFanout } from '../live/fanout.js';
import { createLiveFeed } from '../live/live-feed.js';
import { announce } from '../live/event-bus.js';
import { createHttpApp } from '../http/server.js';
import { createOperationalRoutes, type ReadinessCheck } from '../http/operational-routes.js';
import { createRestRoutes } from '../http/rest-routes.js';
import { createEventQueries } from '../query/event-queries.js';
import { createDeadLetterService } from '../ingest/dead-letters.js';
import { createIngestService } from '../ingest/ingest-service.js';
import type { Logger } from '../observability/logger.js';
import { boundedLabel, type Metrics, type TallyCounter } from '../observability/metrics.js';
import { createApiKeyService } from '../security/api-keys.js';
import { createAuthenticator, type KnownKey } from '../security/authenticate.js';
import { createAuthThrottle } from '../security/auth-throttle.js';
import { createRequestLimiter } from '../security/rate-limit.js';
import { createWorker } from '../worker/worker.js';
import { consumerNameFor, type Backends } from './backends.js';

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export interface RunningRole {
  stop(): Promise<void>;
}

interface RoleDeps {
  config: Config;
  logger: Logger;
  backends: Backends;
  metrics: Metrics;
  /** Signs integrity checkpoints; null or absent: none are written (src/integrity/keys.ts). */
  signingKey?: SigningKey | null;
  /**
   * What /health/ready checks, shared by the roles of one process: each role
   * adds its own (the worker: whether it is stalled), read at every request.
   */
  readiness: ReadinessCheck[];
}

function integrityServiceOf(deps: RoleDeps) {
  return createIntegrityService({
    store: createIntegrityStore(deps.backends.db, { rollups: deps.backends.rollups }),
    events: deps.backends.store,
    key: deps.signingKey ?? null,
    checkpointIntervalMs: deps.config.integrity.checkpointIntervalMs,
  });
}

/** The checks every process makes: its database and its queue answer. */
export function readinessChecks(backends: Backends): ReadinessCheck[] {
  return [
    { name: 'database', check: async () => void (await backends.db.query('SELECT 1')) },
    { name: 'queue', check: async () => void (await backends.queue.stats()) },
  ];
}

/** The API role: GraphQL and the REST shim on every configured port. */
export async function startApi(
  deps: RoleDeps & { keys: readonly KnownKey[] },
): Promise<RunningRole & { ports: number[] }> {
  const { config, logger, backends, metrics } = deps;
  const modelLabel = boundedLabel(50);
  const eventCounters = new Map<string, TallyCounter>();
  const ingest = createIngestService({
    queue: backends.queue,
    loggingEnabled: config.loggingEnabled,
    storedEvents: backends.store,
    idClaims: backends.idClaims,
    onAccepted: (event) => {
      let counter = eventCounters.get(event.eventType);
      if (!counter) {
        counter = metrics.logEvents.tally({ event_type: event.eventType });
        eventCounters.set(event.eventType, counter);
      }
      counter.inc();
      if (event.eventType === 'llm_query_sent') {
        const model = event.payload['model'];
        metrics.llmQueries.inc({ model: modelLabel(typeof model === 'string' ? model : 'unknown') });
      }
    },
  });
  const events = createEventQueries({ store: backends.store });
  const analytics = createAnalyticsService({
    store: createAnalyticsStore(backends.db, { rollups: backends.rollups }),
  });
  const authenticator = createAuthenticator({
    staticKeys: deps.keys,
    store: backends.apiKeys,
    cacheTtlMs: config.auth.keyCacheTtlMs,
    onFailure: (reason) => metrics.authFailures.inc({ reason }),
  });
  const limitRequest = createRequestLimiter({
    limiter: backends.rateLimiter,
    defaultPerMinute: config.rateLimitPerMinute,
    onLimited: () => metrics.rateLimited.inc(),
  });
  // This process forgets a key it revoked at once; other processes within the cache's lifetime.
  const apiKeys = createApiKeyService({
    store: backends.apiKeys,
    onRevoked: (prefix) => authenticator.forget(prefix),
  });
  const flushLastUsed = setInterval(() => {
    authenticator
      .flushLastUsed()
      .catch((error: unknown) => logger.warn({ err: error }, 'recording key use failed'));
  }, 10_000);
  flushLastUsed.unref();
  const deadLetters = createDeadLetterService(backends.queue);
  const services: GraphQLServices = {
    authenticator,
    ingest,
    events,
    analytics,
    apiKeys,
    deadLetters,
    limitRequest,
    limitField: createFieldLimiter(backends.rateLimiter.fieldStore),
    onForbidden: () => metrics.authFailures.inc({ reason: 'scope' }),
    integrity: integrityServiceOf(deps),
  };
  const schema = createSchema();
  const graphql = await createGraphQLRoutes(services, {
    schema,
    logger,
    introspection: config.graphql.introspection,
    landingPage: config.environment !== 'production',
  });
  const feed = createLiveFeed({
    bus: backends.bus,
    source: events,
    logger: logger.child({ component: 'live-feed' }),
    onRecovered: (count) => metrics.liveRecovered.inc(count),
  });
  await feed.start();
  const fanout = createFanout({
    feed,
    source: events,
    logger,
    onSent: (count) => metrics.liveMessages.inc(count),
  });
  const websocket = createGraphQLWebSocket({
    schema,
    services,
    fanout,
    logger,
    metrics,
    queryLimits: DEFAULT_QUERY_LIMITS,
    live: config.live,
    introspection: config.graphql.introspection,
    formatError: createFormatError(logger),
    cors: config.cors.origins,
  });
  const app = createHttpApp({
    routes: [
      ...graphql.routes,
      ...createRestRoutes({ ingest, events, version: VERSION }),
      ...createAnalyticsRoutes(analytics),
      ...createIntegrityRoutes(services.integrity!),
      ...createDeadLetterRoutes(deadLetters),
      ...createOperationalRoutes({
        version: VERSION,
        readiness: deps.readiness,
        metrics,
        metricsToken: config.auth.metricsToken,
      }),
    ],
    authenticator,
    logger,
    maxBodyBytes: config.http.maxBodyBytes,
    metrics,
    limitRequest,
    authThrottle: createAuthThrottle({ failuresPerMinute: config.auth.failuresPerMinute }),
    onUpgrade: websocket.handleUpgrade,
    cors: config.cors.origins,
  });
  const ports = await app.listen(config.http.ports, config.http.host);
  logger.info({ ports, host: config.http.host }, 'API listening');
  return {
    ports,
    async stop() {
      // WebSockets first, with Going Away: their clients reconnect to a replica that stays.
      await websocket.close();
      fanout.stop();
      await feed.stop();
      await app.close(config.shutdownTimeoutMs);
      await graphql.stop();
      clearInterval(flushLastUsed);
      await authenticator.flushLastUsed().catch(() => undefined);
    },
  };
}

/**
 * The worker role: queue to database. Alone in its process it also serves
 * `/metrics` and the health checks on METRICS_PORT, for Prometheus and orchestrators.
 */
export async function startWorkerRole(
  deps: RoleDeps & { serveMetrics: boolean },
): Promise<RunningRole & { metricsPort?: number }> {
  const { config, metrics, backends } = deps;
  // The feeds read what an announcement missed from the database, so a failure costs latency,
  // not events: warn once per interval rather than per batch while the bus is down.
  let lastAnnounceWarning = 0;
  const announceFailed = (error: unknown) => {
    if (Date.now() - lastAnnounceWarning < 10_000) return;
    lastAnnounceWarning = Date.now();
    deps.logger.warn({ err: error }, 'announcing stored events to live feeds failed; feeds will catch up');
  };
  // The rollups count committed events once folded; folding after each commit keeps them seconds
  // fresh without the work sitting inside the insert lock (readers fold what is left first).
  const { rollups } = backends;
  let lastFoldWarning = 0;
  const foldFailed = (error: unknown) => {
    metrics.persistRetries.inc({ operation: 'fold' });
    if (Date.now() - lastFoldWarning < 10_000) return;
    lastFoldWarning = Date.now();
    deps.logger.warn({ err: error }, 'folding stored events into the analytics rollups failed; will retry');
  };
  const worker = createWorker({
    queue: backends.queue,
    store: backends.store,
    probe: async () => void (await backends.db.query('SELECT 1')),
    logger: deps.logger.child({ role: 'worker' }),
    consumerName: consumerNameFor(config),
    batchSize: config.worker.batchSize,
    claimIdleMs: config.worker.claimIdleMs,
    drainQueueOnStop: !backends.queueSurvivesRestart,
    onPersisted: (count, seconds) => {
      metrics.eventsPersisted.inc(count);
      metrics.batchSize.observe(count);
      metrics.persistDuration.observe(seconds);
    },
    onCommitted: (stored) => {
      announce(backends.bus, stored).catch((error: unknown) => announceFailed(error));
      rollups.request(foldFailed);
    },
    onRetry: (operation) => metrics.persistRetries.inc({ operation }),
    onDeadLetter: (_reason, cause) => metrics.deadLettered.inc({ cause }),
  });
  worker.start();
  metrics.watchWorker(() => worker.heldForMs());
  deps.readiness.push({
    name: 'worker',
    check: async () => {
      const heldMs = worker.heldForMs();
      if (heldMs > config.worker.stallMs) {
        throw new Error(
          `stalled: its oldest batch has waited ${Math.round(heldMs / 1000)} s to be stored (WORKER_STALL_MS is ${config.worker.stallMs})`,
        );
      }
    },
  });
  const integrityStore = createIntegrityStore(backends.db, { rollups });
  const integrityLoops = startIntegrityLoops({
    service: integrityServiceOf(deps),
    store: integrityStore,
    intervalMs: config.integrity.checkpointIntervalMs,
    retentionDays: config.integrity.retentionDays,
    logger: deps.logger.child({ role: 'integrity' }),
    onFailure: (operation) => metrics.checkpointFailures.inc({ operation }),
  });
  metrics.watchIntegrity(() => integrityStore.checkpointLag());
  // The worker drains first, so the last checkpoint covers what it stored on the way out.
  const stopWorker = async () => {
    await worker.stop(config.shutdownTimeoutMs);
    await rollups.idle();
    await integrityLoops.stop();
  };
  if (!deps.serveMetrics) return { stop: stopWorker };

  const app = createHttpApp({
    routes: createOperationalRoutes({
      version: VERSION,
      readiness: deps.readiness,
      metrics,
      metricsToken: config.auth.metricsToken,
    }),
    authenticator: createAuthenticator(),
    logger: deps.logger,
    maxBodyBytes: 1024,
    metrics,
  });
  const [metricsPort] = await app.listen([config.worker.metricsPort], config.http.host);
  deps.logger.info({ port: metricsPort }, 'worker metrics listening');
  return {
    metricsPort,
    async stop() {
      await stopWorker();
      await app.close(1000);
    },
  };
}
