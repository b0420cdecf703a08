import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  collectDefaultMetrics,
  type CounterConfiguration,
  type LabelValues,
} from 'prom-client';
import type { QueueStats } from '../events/queue-message.js';

/** One label set's count, as the hot path sees it. */
export interface TallyCounter {
  inc(): void;
}

/**
 * A labelled counter whose hot-path children count in plain numbers, added to
 * the counter when it is collected (a scrape, or get()). prom-client hashes and
 * validates the label object on every inc(), also on a child from labels():
 * about a microsecond of an ingest request, which counts twice.
 */
function talliedCounter<L extends string>(configuration: CounterConfiguration<L>) {
  const labelNames = configuration.labelNames ?? [];
  const children = new Map<string, { labels: LabelValues<L>; count: number; inc(): void }>();
  const counter = new Counter<L>({
    ...configuration,
    collect() {
      for (const child of children.values()) {
        if (child.count === 0) continue;
        counter.inc(child.labels, child.count);
        child.count = 0;
      }
    },
  });
  return Object.assign(counter, {
    /** The counting child for one label set; keep it, finding it builds a key. */
    tally(labels: LabelValues<L>): TallyCounter {
      const key = labelNames.map((name) => String(labels[name] ?? '')).join('\u0000');
      let child = children.get(key);
      if (!child) {
        child = {
          labels: { ...labels },
          count: 0,
          inc() {
            this.count += 1;
          },
        };
        children.set(key, child);
      }
      return child;
    },
  });
}

/**
 * Every metric the service exports, on one registry per process (passed
 * explicitly, never the global one). The first five names are the spec's.
 * Help texts say what a rising value means. Label values are bounded: routes
 * come from the route table, models are capped (see {@link boundedLabel}).
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let queueStats: (() => Promise<QueueStats>) | undefined;
  // One read of the queue serves the three gauges of a scrape.
  let reading: Promise<QueueStats | undefined> | undefined;
  const readQueue = (): Promise<QueueStats | undefined> => {
    reading ??= (queueStats?.() ?? Promise.resolve(undefined))
      .catch(() => undefined)
      .finally(() => setImmediate(() => (reading = undefined)));
    return reading;
  };

  let integrityLag: (() => Promise<IntegrityLag>) | undefined;
  let workerHeldMs: (() => number) | undefined;
  // One read of the database serves both integrity gauges of a scrape.
  let readingLag: Promise<IntegrityLag | undefined> | undefined;
  const readIntegrityLag = (): Promise<IntegrityLag | undefined> => {
    readingLag ??= (integrityLag?.() ?? Promise.resolve(undefined))
      .catch(() => undefined)
      .finally(() => setImmediate(() => (readingLag = undefined)));
    return readingLag;
  };

  const metrics = {
    registry,
    apiRequests: talliedCounter({
      name: 'api_requests_total',
      help: 'HTTP requests answered, by route and status. A rising 4xx share means callers send bad requests or bad keys; 5xx means auditgraph fails.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'request_duration_seconds',
      help: 'Time to answer an HTTP request. A rising tail means the API process is saturated or a backend is slow.',
      labelNames: ['method', 'route'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    logEvents: talliedCounter({
      name: 'log_events_total',
      help: 'Events accepted into the queue, by type. Its rate is the ingest rate; compare with auditgraph_events_persisted_total.',
      labelNames: ['event_type'] as const,
      registers: [registry],
    }),
    llmQueries: new Counter({
      name: 'llm_queries_total',
      help: 'llm_query_sent events accepted, by model (at most 50 model names, then "other"). A rising rate means rising LLM usage and cost.',
      labelNames: ['model'] as const,
      registers: [registry],
    }),
    queueSize: new Gauge({
      name: 'queue_size',
      help: 'Events queued and not yet stored. Rising means the workers do not keep up, or the database is unavailable.',
      registers: [registry],
      async collect() {
        const stats = await readQueue();
        if (stats) this.set(stats.depth);
      },
    }),
    queueLag: new Gauge({
      name: 'auditgraph_queue_lag_seconds',
      help: 'Age of the oldest event not yet stored. Rising means stored events fall behind accepted ones.',
      registers: [registry],
      async collect() {
        const stats = await readQueue();
        if (stats) this.set(stats.oldestAgeMs === null ? 0 : stats.oldestAgeMs / 1000);
      },
    }),
    deadLetters: new Gauge({
      name: 'auditgraph_dead_letters',
      help: 'Events set aside because they can never be stored. Any rise needs an operator: inspect the dead-letter stream.',
      registers: [registry],
      async collect() {
        const stats = await readQueue();
        if (stats) this.set(stats.deadLetters);
      },
    }),
    eventsPersisted: new Counter({
      name: 'auditgraph_events_persisted_total',
      help: 'Events committed to the database by this process. Its rate is the persistence rate.',
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'auditgraph_persist_batch_size',
      help: 'Events per committed batch. Small batches under load mean the worker reads faster than events arrive.',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers: [registry],
    }),
    persistDuration: new Histogram({
      name: 'auditgraph_persist_duration_seconds',
      help: 'Time to commit one batch. Rising means the database is slowing down.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    persistRetries: new Counter({
      name: 'auditgraph_persist_retries_total',
      help: 'Transient failures retried by the worker (database or queue unavailable). Rising means a backend is failing.',
      labelNames: ['operation'] as const,
      registers: [registry],
    }),
    deadLettered: new Counter({
      name: 'auditgraph_dead_lettered_total',
      help: 'Events this process moved to the dead-letter stream, by cause: unparseable (not a queued event), unstorable (the database refuses it every time), conflict (its event_id already holds a different event). Any rise needs an operator.',
      labelNames: ['cause'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'auditgraph_rate_limited_total',
      help: 'Requests refused with 429 because a key exceeded its rate limit. Rising means a caller floods or its limit is too low.',
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'auditgraph_auth_failures_total',
      help: 'Requests refused for a missing, unknown or under-scoped key. A sudden rise means a misconfigured caller or probing.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    liveConnections: new Gauge({
      name: 'auditgraph_live_connections',
      help: 'Open WebSocket connections to this API process (the eventLogged feed).',
      registers: [registry],
    }),
    liveSubscriptions: new Gauge({
      name: 'auditgraph_live_subscriptions',
      help: 'Active eventLogged subscriptions on this API process.',
      registers: [registry],
    }),
    liveMessages: new Counter({
      name: 'auditgraph_live_messages_total',
      help: 'eventLogged messages sent to subscribers. Its rate against the persistence rate shows the fan-out.',
      registers: [registry],
    }),
    liveDisconnects: new Counter({
      name: 'auditgraph_live_disconnects_total',
      help: 'WebSocket connections closed by the server, by reason. Rising slow_consumer means subscribers cannot keep up.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    liveRecovered: new Counter({
      name: 'auditgraph_live_recovered_events_total',
      help: 'Events the feed read from the database because their announcement was late or lost (pub/sub outage, worker crash). Occasional is normal; steady means the bus is unhealthy.',
      registers: [registry],
    }),
    checkpointAge: new Gauge({
      name: 'auditgraph_integrity_checkpoint_age_seconds',
      help: 'How long the oldest stored event not yet under a signed checkpoint has waited (0 when all are covered). Rising past a few checkpoint intervals means checkpoints stopped: recent history is not yet tamper-evident.',
      registers: [registry],
      async collect() {
        const lag = await readIntegrityLag();
        if (lag) this.set(lag.oldestAgeSeconds);
      },
    }),
    uncheckpointedEvents: new Gauge({
      name: 'auditgraph_integrity_uncheckpointed_events',
      help: 'Stored events not yet under a signed checkpoint. Growing without falling back means checkpoints stopped.',
      registers: [registry],
      async collect() {
        const lag = await readIntegrityLag();
        if (lag) this.set(lag.uncheckpointed);
      },
    }),
    workerHeld: new Gauge({
      name: 'auditgraph_worker_held_seconds',
      help: 'How long the oldest batch this worker holds has waited to be stored or set aside (0 when it holds none). Rising past WORKER_STALL_MS means the worker is stalled: the database is failing, or a batch cannot be written; the worker then reports not ready.',
      registers: [registry],
      collect() {
        if (workerHeldMs) this.set(workerHeldMs() / 1000);
      },
    }),
    checkpointFailures: new Counter({
      name: 'auditgraph_integrity_checkpoint_failures_total',
      help: 'Checkpoint or retention runs that failed. Any rise needs a look at the worker log; a missing leaf means tampering.',
      labelNames: ['operation'] as const,
      registers: [registry],
    }),
    /** Makes the integrity gauges read `lag` at each scrape (processes that write checkpoints). */
    watchIntegrity(lag: () => Promise<IntegrityLag>): void {
      integrityLag = lag;
    },
    /** Makes the worker gauge read `heldMs` at each scrape (processes that run a worker). */
    watchWorker(heldMs: () => number): void {
      workerHeldMs = heldMs;
    },
    /** Makes the queue gauges read `stats` at each scrape. */
    watchQueue(stats: () => Promise<QueueStats>): void {
      queueStats = stats;
    },
  };
  // promtool rejects a _total suffix on gauges, and prom-client names three of its own that way.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(name);
  }
  // Known label values start at 0, so increase() over a scrape sees the first event of each.
  for (const cause of ['unparseable', 'unstorable', 'conflict']) metrics.deadLettered.inc({ cause }, 0);
  for (const operation of ['insert', 'acknowledge', 'dead-letter', 'read', 'fold'])
    metrics.persistRetries.inc({ operation }, 0);
  for (const reason of ['missing', 'unknown', 'revoked', 'scope']) metrics.authFailures.inc({ reason }, 0);
  for (const operation of ['checkpoint', 'retention']) metrics.checkpointFailures.inc({ operation }, 0);
  for (const reason of ['slow_consumer', 'keepalive_timeout', 'shutdown'])
    metrics.liveDisconnects.inc({ reason }, 0);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What the integrity gauges show: see IntegrityStore.checkpointLag. */
export interface IntegrityLag {
  uncheckpointed: number;
  oldestAgeSeconds: number;
}

/**
 * Keeps a label's values bounded: the first `max` distinct values pass, the
 * rest become "other", so a caller inventing names cannot grow the registry.
 */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return 'other';
    seen.add(value);
    return value;
  };
}
