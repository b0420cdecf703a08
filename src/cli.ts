import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { VERSION } from './app/roles.js';
import { startAuditgraph, type Role } from './app/start.js';
import { ConfigError, loadConfig, redactUrl, type Config } from './config/index.js';
import { AppError } from './errors.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createApiKeyService } from './security/api-keys.js';
import { digestSecret, SCOPES, type KnownKey, type Scope } from './security/authenticate.js';
import { createApiKeyStore, type ApiKeyRecord } from './store/api-key-store.js';
import { openDatabase } from './store/database.js';
import { migrate } from './store/migrate.js';

const USAGE = `auditgraph ${VERSION}

Usage: auditgraph <command>

  all       API and worker in one process (the default; embedded when no DATABASE_URL/REDIS_URL)
  serve     HTTP API only (needs Redis and PostgreSQL; run workers separately)
  worker    queue to database only (needs Redis and PostgreSQL)
  migrate   apply database migrations and exit
  keys create --name NAME --scopes ingest,read[,admin] [--rate-limit N]
            create an API key; its secret is printed once, on a line of its own
  keys list                list API keys (never their secrets)
  keys revoke ID           revoke a key
  help      this text

Configuration comes from the environment (and ./.env); see .env.template.
With embedded PGlite, stop the server before running 'keys' (one process owns the data
folder), or use the admin GraphQL mutations instead.`;

const EX_USAGE = 64;
const EX_CONFIG = 78;

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0] ?? 'all';
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (!['all', 'serve', 'worker', 'migrate', 'keys'].includes(command)) {
    console.error(`Unknown command '${command}'.\n\n${USAGE}`);
    return EX_USAGE;
  }

  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return EX_CONFIG;
    }
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });

  if (command === 'migrate') {
    const db = await openDatabase(config.database);
    try {
      const { applied } = await migrate(db);
      logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
    } finally {
      await db.close();
    }
    return 0;
  }
  if (command === 'keys') return keys(argv.slice(1), config);
  return run(command as Role, config, logger);
}

function roleProblems(role: Role, config: Config): string[] {
  if (role === 'all') return [];
  const problems: string[] = [];
  if (config.queue.kind === 'memory') {
    problems.push(`'${role}' alone needs Redis (set REDIS_URL): the in-process queue only works with 'all'.`);
  }
  if (config.database.kind === 'pglite') {
    problems.push(`'${role}' alone needs PostgreSQL (set DATABASE_URL): embedded PGlite is one process's.`);
  }
  return problems;
}

async function run(role: Role, config: Config, logger: Logger): Promise<number> {
  const problems = roleProblems(role, config);
  if (problems.length > 0) {
    console.error(new ConfigError(problems).message);
    return EX_CONFIG;
  }
  const staticKeys: KnownKey[] =
    config.auth.adminApiKey === undefined
      ? []
      : [{ id: 'admin', scopes: SCOPES, sha256: digestSecret(config.auth.adminApiKey) }];

  // Listening before start-up, so a SIGTERM during it still ends in an orderly stop.
  const stopRequested = new Promise<void>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        logger.warn({ signal }, 'second signal: exiting without draining');
        process.exit(1);
      }
      signalled = true;
      logger.info({ signal }, 'shutting down: draining');
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  let running;
  try {
    running = await startAuditgraph({
      role,
      config,
      logger,
      keys: staticKeys,
      createAdminKeyIfNone: config.database.kind === 'pglite',
    });
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return EX_CONFIG;
    }
    throw error;
  }
  printBanner(role, config, running.ports, running.createdAdminSecret);

  await stopRequested;
  await running.stop();
  logger.info('stopped');
  return 0;
}

async function keys(args: readonly string[], config: Config): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: [...rest],
    allowPositionals: true,
    options: { name: { type: 'string' }, scopes: { type: 'string' }, 'rate-limit': { type: 'string' } },
  });
  const db = await openDatabase(config.database);
  try {
    await migrate(db);
    const service = createApiKeyService({ store: createApiKeyStore(db) });
    switch (action) {
      case 'create': {
        const rateLimit = values['rate-limit'];
        const { key, secret } = await service.create({
          name: values.name ?? '',
          scopes: (values.scopes ?? '').split(',').filter(Boolean) as Scope[],
          rateLimitPerMinute: rateLimit === undefined ? null : Number(rateLimit),
        });
        console.error(
          `Created ${key.id} (${key.name}) with scopes ${key.scopes.join(',')}. The secret, shown once:`,
        );
        console.log(secret);
        return 0;
      }
      case 'list': {
        const rows = (await service.list()).map(describeKey);
        console.log(rows.length ? rows.join('\n') : 'No API keys.');
        return 0;
      }
      case 'revoke': {
        const [id] = positionals;
        if (!id) {
          console.error('Usage: auditgraph keys revoke ID');
          return EX_USAGE;
        }
        const key = await service.revoke(id);
        console.log(`Revoked ${key.id} (${key.name}).`);
        return 0;
      }
      default:
        console.error(`Unknown keys action '${action ?? ''}'.\n\n${USAGE}`);
        return EX_USAGE;
    }
  } catch (error) {
    if (error instanceof AppError) {
      console.error(error.message);
      return error.code === 'NOT_FOUND' ? 1 : EX_USAGE;
    }
    throw error;
  } finally {
    await db.close();
  }
}

function describeKey(key: ApiKeyRecord): string {
  const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
  const limit = key.rateLimitPerMinute === null ? 'default limit' : `${key.rateLimitPerMinute}/min`;
  const used = key.lastUsedAt ? `last used ${key.lastUsedAt.toISOString()}` : 'never used';
  return [key.id, key.prefix, key.name, key.scopes.join(','), limit, state, used].join('\t');
}

function printBanner(role: Role, config: Config, ports: number[], createdAdminSecret: string | undefined) {
  const lines = [`auditgraph ${VERSION} (${role})`];
  lines.push(
    config.database.kind === 'pglite'
      ? `  database: embedded PGlite in ${config.database.dataDir}`
      : `  database: ${redactUrl(config.database.url)}`,
  );
  lines.push(
    config.queue.kind === 'memory'
      ? '  queue:    in-process (events not yet stored are lost if the process dies)'
      : `  queue:    Redis stream ${config.queue.stream} at ${redactUrl(config.queue.url)}`,
  );
  if (ports.length > 0)
    lines.push(`  listening: ${ports.map((port) => `http://localhost:${port}`).join(', ')}`);
  if (createdAdminSecret !== undefined) {
    lines.push(
      '',
      '  An admin API key was created. It is shown this once; only a salted hash is kept.',
      '  Send it as the X-API-Key header:',
      '',
      createdAdminSecret,
      '',
      `  curl -X POST http://localhost:${ports[0] ?? 8001}/log -H "X-API-Key: <key>" -H "Content-Type: application/json" \\`,
      `       -d '{"session_id": 123, "event_type": "review_started", "payload": {"code_language": "python"}}'`,
    );
  } else if (role !== 'worker') {
    lines.push('  auth:     API keys (auditgraph keys list), or ADMIN_API_KEY');
  }
  console.log(lines.join('\n'));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `auditgraph: ${error.message}` : error);
    process.exit(1);
  },
);
