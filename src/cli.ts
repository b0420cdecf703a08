import { existsSync } from 'node:fs';
import { ConfigError, loadConfig, redactUrl, type Config } from './config/index.js';
import { createLogger, type Logger } from './observability/logger.js';
import { loadBootstrapKeys } from './security/bootstrap-key.js';
import { VERSION } from './app/roles.js';
import { startAuditgraph, type Role } from './app/start.js';
import { openDatabase } from './store/database.js';
import { migrate } from './store/migrate.js';

const USAGE = `auditgraph ${VERSION}

Usage: auditgraph <command>

  all       API and worker in one process (the default; embedded when no DATABASE_URL/REDIS_URL)
  serve     HTTP API only (needs Redis and PostgreSQL; run workers separately)
  worker    queue to database only (needs Redis and PostgreSQL)
  migrate   apply database migrations and exit
  help      this text

Configuration comes from the environment (and ./.env); see .env.template.`;

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0] ?? 'all';
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (!['all', 'serve', 'worker', 'migrate'].includes(command)) {
    console.error(`Unknown command '${command}'.\n\n${USAGE}`);
    return 2;
  }

  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return 78; // EX_CONFIG
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
  const serving = role !== 'worker';
  const bootstrap = serving
    ? await loadBootstrapKeys({
        adminApiKey: config.auth.adminApiKey,
        dataDir: config.dataDir,
        allowGenerated: config.database.kind === 'pglite',
      })
    : { keys: [] };
  if (serving && bootstrap.keys.length === 0) problems.push('ADMIN_API_KEY: is required with PostgreSQL.');
  if (problems.length > 0) {
    console.error(new ConfigError(problems).message);
    return 78;
  }

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
  const running = await startAuditgraph({ role, config, logger, keys: bootstrap.keys });
  printBanner(role, config, running.ports, bootstrap);

  await stopRequested;
  await running.stop();
  logger.info('stopped');
  return 0;
}

function printBanner(
  role: Role,
  config: Config,
  ports: number[],
  bootstrap: { newSecret?: string; file?: string },
) {
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
  if (bootstrap.newSecret !== undefined) {
    lines.push(
      '',
      '  An admin API key was created. It is shown this once; only its hash is kept',
      `  (in ${bootstrap.file}). Send it as the X-API-Key header:`,
      '',
      bootstrap.newSecret,
      '',
      `  curl -X POST http://localhost:${ports[0] ?? 8001}/log -H "X-API-Key: <key>" -H "Content-Type: application/json" \\`,
      `       -d '{"session_id": 123, "event_type": "review_started", "payload": {"code_language": "python"}}'`,
    );
  } else if (bootstrap.file !== undefined) {
    lines.push(
      `  auth: the admin key created on first start (hash in ${bootstrap.file}), or set ADMIN_API_KEY`,
    );
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
