import { ConfigError, type Config } from '../config/index.js';
import { createApiKeyService } from '../security/api-keys.js';
import type { Logger } from '../observability/logger.js';
import type { KnownKey } from '../security/authenticate.js';
import { createMetrics } from '../observability/metrics.js';
import { openBackends, type Backends } from './backends.js';
import { loadSigningKey, type SigningKey } from '../integrity/keys.js';
import { readinessChecks, startApi, startWorkerRole, type RunningRole } from './roles.js';

export type Role = 'all' | 'serve' | 'worker';

export interface Running {
  /** Bound HTTP ports: the API's, or a lone worker's metrics port. */
  ports: number[];
  /** The secret of the admin key created on this start, if one was: shown once, never stored. */
  createdAdminSecret?: string;
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
  /** With no key at all (first embedded start), create an admin key instead of refusing to serve. */
  createAdminKeyIfNone?: boolean;
  /** See BackendOptions.volatileQueue: for bench/embedded only. */
  volatileQueue?: boolean;
}): Promise<Running> {
  const { role, config, logger } = options;
  const signingKey = await openSigningKey(config, logger);
  const backends = await openBackends(config, { volatileQueue: options.volatileQueue === true });
  let createdAdminSecret: string | undefined;
  if (role !== 'worker' && options.keys.length === 0 && (await backends.apiKeys.countActive()) === 0) {
    if (!options.createAdminKeyIfNone) {
      await backends.close();
      throw new ConfigError([
        'ADMIN_API_KEY: is required until an API key exists (or create one: auditgraph keys create --name NAME --scopes admin)',
      ]);
    }
    const service = createApiKeyService({ store: backends.apiKeys });
    createdAdminSecret = (
      await service.create({ name: 'admin (created on first start)', scopes: ['admin', 'ingest', 'read'] })
    ).secret;
  }
  const metrics = createMetrics();
  metrics.watchQueue(() => backends.queue.stats());
  const readiness = readinessChecks(backends);
  const shared = { config, logger, backends, metrics, signingKey, readiness };
  const parts: RunningRole[] = [];
  let ports: number[] = [];
  try {
    if (role !== 'worker') {
      const api = await startApi({ ...shared, keys: options.keys });
      ports = api.ports;
      parts.push(api);
    }
    if (role !== 'serve') {
      const worker = await startWorkerRole({ ...shared, serveMetrics: role === 'worker' });
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
    ...(createdAdminSecret === undefined ? {} : { createdAdminSecret }),
    async stop() {
      // The API stops accepting first, so the worker drains a queue that no longer grows.
      for (const part of parts) await part.stop();
      await backends.close();
    },
  };
}

/**
 * The checkpoint signing key (src/integrity/keys.ts), loaded before anything
 * opens. Only its id is logged, never the key.
 * @throws ConfigError when the configured key cannot be read or is not Ed25519.
 */
async function openSigningKey(config: Config, logger: Logger): Promise<SigningKey | null> {
  let key: SigningKey | null;
  try {
    key = await loadSigningKey({
      signingKey: config.integrity.signingKey,
      signingKeyFile: config.integrity.signingKeyFile,
      dataDir: config.database.kind === 'pglite' ? config.dataDir : undefined,
    });
  } catch (error) {
    throw new ConfigError([
      `INTEGRITY_SIGNING_KEY: ${error instanceof Error ? error.message : String(error)}`,
    ]);
  }
  if (key)
    logger.info({ keyId: key.keyId, source: key.source }, 'integrity checkpoints signed with this key');
  else {
    logger.warn(
      'INTEGRITY_SIGNING_KEY is not set: no integrity checkpoints are signed, so proofs are unavailable and ' +
        'stored history is hash-linked but not signed. Generate a key with `auditgraph keys signing`.',
    );
  }
  return key;
}
