import path from 'node:path';
import { z } from 'zod';
import { parseCorsOrigins, type CorsOrigins } from './cors-origins.js';

/**
 * Configuration is read from the environment here and nowhere else. Every
 * variable is listed in `.env.template`; `test/config/config.test.ts` keeps the
 * two in step. The spec's names (logging-service v2) keep working beside the
 * URL forms: `DATABASE_URL` wins over `DATABASE_HOST/PORT/NAME/USER/PASSWORD`,
 * `REDIS_URL` over `REDIS_HOST/PORT`.
 */

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'TRUE', 'FALSE', 'True', 'False'])
  .transform((value) => ['true', '1', 'yes'].includes(value.toLowerCase()));

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');

const positiveInt = (max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, `must be between 1 and ${max}`)
    .max(max, `must be between 1 and ${max}`);

const postgresUrl = z
  .string()
  .trim()
  .refine((value) => /^postgres(ql)?:\/\//.test(value), 'must be a postgres:// or postgresql:// URL');

const redisUrl = z
  .string()
  .trim()
  .refine((value) => /^rediss?:\/\//.test(value), 'must be a redis:// or rediss:// URL')
  .refine((value) => URL.canParse(value), 'is not a valid URL')
  // ioredis reads the path as the database number and quietly uses 0 for anything else.
  .refine(
    (value) => !URL.canParse(value) || /^\/?(\d{1,5})?$/.test(new URL(value).pathname),
    'must end in a database number if it has a path (e.g. redis://host:6379/0)',
  );

// Each bad entry is named: origins are public, unlike most values here.
const corsOrigins = z.string().transform((value, context): CorsOrigins => {
  const { origins, problems } = parseCorsOrigins(value);
  for (const message of problems) context.addIssue({ code: 'custom', message });
  return problems.length > 0 ? z.NEVER : origins;
});

/** Variables as they arrive: all optional strings, each with its own rule. */
export const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),

  LOGGING_ENABLED: booleanFlag.optional(),
  LOGGING_SERVICE_URL: z.url().optional(),

  HOST: z.string().min(1).optional(),
  PRODUCER_PORT: port.optional(),
  QUERY_SERVICE_PORT: port.optional(),
  MAX_BODY_BYTES: positiveInt(64 * 1024 * 1024).optional(),
  CORS_ORIGINS: corsOrigins.optional(),

  DATABASE_URL: postgresUrl.optional(),
  DATABASE_HOST: z.string().min(1).optional(),
  DATABASE_PORT: port.optional(),
  DATABASE_NAME: z.string().min(1).optional(),
  DATABASE_USER: z.string().min(1).optional(),
  DATABASE_PASSWORD: z.string().min(1).optional(),
  DATABASE_POOL_SIZE: positiveInt(200).optional(),

  USE_REDIS_QUEUE: booleanFlag.optional(),
  REDIS_URL: redisUrl.optional(),
  REDIS_HOST: z.string().min(1).optional(),
  REDIS_PORT: port.optional(),
  QUEUE_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]+$/, 'may hold letters, digits and : _ . - only')
    .optional(),
  QUEUE_MAX_LENGTH: positiveInt(100_000_000).optional(),
  EVENT_ID_CLAIM_TTL_MS: positiveInt(7 * 24 * 3600 * 1000).optional(),

  ADMIN_API_KEY: z.string().min(12, 'must be at least 12 characters long').optional(),
  RATE_LIMIT_PER_MINUTE: positiveInt(10_000_000).optional(),
  AUTH_FAILURES_PER_MINUTE: positiveInt(1_000_000).optional(),
  GRAPHQL_INTROSPECTION: booleanFlag.optional(),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters long').optional(),
  KEY_CACHE_TTL_MS: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(0, 'must be between 0 and 600000')
    .max(600_000, 'must be between 0 and 600000')
    .optional(),

  AUDITGRAPH_DATA_DIR: z.string().min(1).optional(),

  WORKER_BATCH_SIZE: positiveInt(10_000).optional(),
  WORKER_CONSUMER_NAME: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]+$/, 'may hold letters, digits and : _ . - only')
    .optional(),
  WORKER_CLAIM_IDLE_MS: positiveInt(24 * 3600 * 1000).optional(),
  WORKER_STALL_MS: positiveInt(24 * 3600 * 1000).optional(),
  METRICS_PORT: port.optional(),
  SHUTDOWN_TIMEOUT_MS: positiveInt(10 * 60 * 1000).optional(),

  INTEGRITY_SIGNING_KEY: z.string().min(1).optional(),
  INTEGRITY_SIGNING_KEY_FILE: z.string().min(1).optional(),
  INTEGRITY_CHECKPOINT_INTERVAL_MS: positiveInt(24 * 3600 * 1000).optional(),
  RETENTION_DAYS: positiveInt(100 * 366).optional(),

  LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION: positiveInt(10_000).optional(),
  LIVE_MAX_SUBSCRIPTIONS_PER_KEY: positiveInt(1_000_000).optional(),
  LIVE_MAX_BUFFERED_BYTES: positiveInt(1024 * 1024 * 1024).optional(),
  LIVE_KEEPALIVE_MS: positiveInt(10 * 60 * 1000).optional(),
});

export type Environment = z.infer<typeof environmentSchema>;

export type DatabaseConfig =
  | {
      kind: 'postgres';
      url: string;
      poolSize: number;
      /** The variables the URL came from, for messages that say what to fix. */
      from?: string;
    }
  | { kind: 'pglite'; dataDir: string };

export type QueueConfig =
  | {
      kind: 'redis';
      url: string;
      stream: string;
      maxLength: number;
      /** The variables the URL came from, for messages that say what to fix. */
      from?: string;
    }
  /** The on-disk queue in the data folder (or, for bench/embedded only, in memory). */
  | { kind: 'disk'; maxLength: number };

export interface Config {
  environment: 'development' | 'production' | 'test';
  logLevel: string;
  /** The spec's LOGGING_ENABLED: when false, `POST /log` answers 202 and drops the event. */
  loggingEnabled: boolean;
  http: { host: string; ports: number[]; maxBodyBytes: number };
  /** Origins whose pages may call the API (REST, /graphql, its WebSocket); empty: same origin only. */
  cors: { origins: CorsOrigins };
  database: DatabaseConfig;
  queue: QueueConfig;
  /** How long the API remembers a caller-chosen event_id it accepted, to refuse its reuse before it is stored. */
  eventIdClaimTtlMs: number;
  /**
   * `keyCacheTtlMs`: how long a looked-up key is trusted; revocations elsewhere take effect within it.
   * `failuresPerMinute`: 401s one client address may get in a minute before it is answered 429.
   */
  auth: {
    adminApiKey: string | undefined;
    keyCacheTtlMs: number;
    metricsToken: string | undefined;
    failuresPerMinute: number;
  };
  rateLimitPerMinute: number;
  /** Introspection answers by default, except in production. */
  graphql: { introspection: boolean };
  dataDir: string;
  /** `metricsPort`: where a worker-only process serves /metrics and health. */
  /** `stallMs`: a worker whose oldest batch has waited longer than this to be stored reports not ready. */
  worker: {
    batchSize: number;
    consumerName: string | undefined;
    claimIdleMs: number;
    stallMs: number;
    metricsPort: number;
  };
  shutdownTimeoutMs: number;
  /**
   * Tamper evidence (src/integrity). `signingKey` is a PKCS#8 Ed25519 key (PEM or base64 DER);
   * without one or a file, embedded mode generates one into the data folder and PostgreSQL
   * writes no checkpoints. `retentionDays` unset keeps events forever.
   */
  integrity: {
    signingKey: string | undefined;
    signingKeyFile: string | undefined;
    checkpointIntervalMs: number;
    retentionDays: number | undefined;
  };
  /**
   * The `eventLogged` feed. Subscription limits are per API process; `maxBufferedBytes` is how
   * much a connection may leave unsent before it is closed as a slow consumer.
   */
  live: {
    maxSubscriptionsPerConnection: number;
    maxSubscriptionsPerKey: number;
    maxBufferedBytes: number;
    keepAliveMs: number;
  };
  /** True when nothing external is configured: PGlite and the in-process queue. */
  embedded: boolean;
}

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_QUEUE_MAX_LENGTH = 100_000;

/**
 * Parses and validates the environment once. Throws a {@link ConfigError}
 * listing every problem at once; it never echoes a variable's value, since
 * several of them are secrets (CORS_ORIGINS names its bad entries: origins are public).
 */
export function loadConfig(
  source: Readonly<Record<string, string | undefined>>,
  cwd = process.cwd(),
): Config {
  // Blank values are treated as unset: `.env` files often carry `NAME=`.
  const present = Object.fromEntries(
    Object.entries(source).filter(([, value]) => value !== undefined && value.trim() !== ''),
  );
  const parsed = environmentSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`),
    );
  }
  const env = parsed.data;
  const problems: string[] = [];

  const dataDir = path.resolve(cwd, env.AUDITGRAPH_DATA_DIR ?? '.auditgraph-data');
  const database = resolveDatabase(env, dataDir, problems);
  const queue = resolveQueue(env, problems);

  const producerPort = env.PRODUCER_PORT ?? 8001;
  const queryPort = env.QUERY_SERVICE_PORT ?? 8002;
  const ports = producerPort === queryPort ? [producerPort] : [producerPort, queryPort];

  if (env.INTEGRITY_SIGNING_KEY !== undefined && env.INTEGRITY_SIGNING_KEY_FILE !== undefined) {
    problems.push('INTEGRITY_SIGNING_KEY_FILE: give the signing key or its file, not both');
  }

  if (problems.length > 0) throw new ConfigError(problems);

  return {
    environment: env.NODE_ENV ?? 'development',
    logLevel: env.LOG_LEVEL ?? 'info',
    loggingEnabled: env.LOGGING_ENABLED ?? true,
    http: { host: env.HOST ?? '0.0.0.0', ports, maxBodyBytes: env.MAX_BODY_BYTES ?? DEFAULT_MAX_BODY_BYTES },
    cors: { origins: env.CORS_ORIGINS ?? [] },
    database,
    queue,
    eventIdClaimTtlMs: env.EVENT_ID_CLAIM_TTL_MS ?? 600_000,
    auth: {
      adminApiKey: env.ADMIN_API_KEY,
      keyCacheTtlMs: env.KEY_CACHE_TTL_MS ?? 5000,
      metricsToken: env.METRICS_TOKEN,
      failuresPerMinute: env.AUTH_FAILURES_PER_MINUTE ?? 20,
    },
    rateLimitPerMinute: env.RATE_LIMIT_PER_MINUTE ?? 1000,
    graphql: { introspection: env.GRAPHQL_INTROSPECTION ?? env.NODE_ENV !== 'production' },
    dataDir,
    worker: {
      batchSize: env.WORKER_BATCH_SIZE ?? 1000,
      consumerName: env.WORKER_CONSUMER_NAME,
      claimIdleMs: env.WORKER_CLAIM_IDLE_MS ?? 30_000,
      stallMs: env.WORKER_STALL_MS ?? 60_000,
      metricsPort: env.METRICS_PORT ?? 9464,
    },
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS ?? 25_000,
    integrity: {
      signingKey: env.INTEGRITY_SIGNING_KEY,
      signingKeyFile:
        env.INTEGRITY_SIGNING_KEY_FILE === undefined
          ? undefined
          : path.resolve(cwd, env.INTEGRITY_SIGNING_KEY_FILE),
      checkpointIntervalMs: env.INTEGRITY_CHECKPOINT_INTERVAL_MS ?? 10_000,
      retentionDays: env.RETENTION_DAYS,
    },
    live: {
      maxSubscriptionsPerConnection: env.LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION ?? 100,
      maxSubscriptionsPerKey: env.LIVE_MAX_SUBSCRIPTIONS_PER_KEY ?? 1000,
      maxBufferedBytes: env.LIVE_MAX_BUFFERED_BYTES ?? 4 * 1024 * 1024,
      keepAliveMs: env.LIVE_KEEPALIVE_MS ?? 12_000,
    },
    embedded: database.kind === 'pglite' && queue.kind === 'disk',
  };
}

function resolveDatabase(env: Environment, dataDir: string, problems: string[]): DatabaseConfig {
  const poolSize = env.DATABASE_POOL_SIZE ?? 10;
  if (env.DATABASE_URL) return { kind: 'postgres', url: env.DATABASE_URL, poolSize, from: 'DATABASE_URL' };

  // The host decides: the other parts have defaults that a copied template carries.
  if (env.DATABASE_HOST === undefined) return { kind: 'pglite', dataDir: path.join(dataDir, 'pglite') };

  if (!env.DATABASE_PASSWORD) {
    problems.push('DATABASE_PASSWORD: is required with DATABASE_HOST (or give the whole DATABASE_URL)');
  }
  const url = new URL('postgresql://localhost');
  url.hostname = env.DATABASE_HOST ?? 'localhost';
  url.port = String(env.DATABASE_PORT ?? 5432);
  url.username = env.DATABASE_USER ?? 'logging_service_user';
  url.password = env.DATABASE_PASSWORD ?? '';
  url.pathname = `/${env.DATABASE_NAME ?? 'code_reviewer_logs'}`;
  return {
    kind: 'postgres',
    url: url.toString(),
    poolSize,
    from: 'DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER and DATABASE_PASSWORD',
  };
}

function resolveQueue(env: Environment, problems: string[]): QueueConfig {
  const maxLength = env.QUEUE_MAX_LENGTH ?? DEFAULT_QUEUE_MAX_LENGTH;
  const stream = env.QUEUE_STREAM ?? 'auditgraph:events';
  // As for the database, the host decides; REDIS_PORT alone is a template default.
  const redisGiven = env.REDIS_URL !== undefined || env.REDIS_HOST !== undefined;

  if (env.USE_REDIS_QUEUE === false) {
    if (redisGiven) problems.push('USE_REDIS_QUEUE: is false, but REDIS_URL or REDIS_HOST is set');
    return { kind: 'disk', maxLength };
  }
  if (env.REDIS_URL) return { kind: 'redis', url: env.REDIS_URL, stream, maxLength, from: 'REDIS_URL' };
  // The spec defaults USE_REDIS_QUEUE to true with localhost:6379. We keep that
  // when it is asked for explicitly; with nothing set, the embedded queue runs.
  if (redisGiven || env.USE_REDIS_QUEUE === true) {
    return {
      kind: 'redis',
      url: `redis://${env.REDIS_HOST ?? 'localhost'}:${env.REDIS_PORT ?? 6379}`,
      stream,
      maxLength,
      from: redisGiven
        ? 'REDIS_HOST and REDIS_PORT'
        : 'USE_REDIS_QUEUE=true (REDIS_HOST and REDIS_PORT, localhost:6379 by default)',
    };
  }
  return { kind: 'disk', maxLength };
}

/** A connection string with its password replaced, for logs and start-up banners. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
