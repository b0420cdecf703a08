import { VERSION } from '../app/roles.js';
import { startAuditgraph, type Role } from '../app/start.js';
import { ConfigError, redactUrl, type Config } from '../config/index.js';
import { createLogger } from '../observability/logger.js';
import { digestSecret, SCOPES, type KnownKey } from '../security/authenticate.js';
import { EX_CONFIG } from './commands.js';

/** `all`, `serve` or `worker`, until SIGTERM or SIGINT; then drains and returns 0. */
export async function runRole(role: Role, config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
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

function roleProblems(role: Role, config: Config): string[] {
  if (role === 'all') return [];
  const problems: string[] = [];
  if (config.queue.kind === 'disk') {
    problems.push(`'${role}' alone needs Redis (set REDIS_URL): the in-process queue only works with 'all'.`);
  }
  if (config.database.kind === 'pglite') {
    problems.push(`'${role}' alone needs PostgreSQL (set DATABASE_URL): embedded PGlite is one process's.`);
  }
  return problems;
}

function printBanner(role: Role, config: Config, ports: number[], createdAdminSecret: string | undefined) {
  const lines = [`auditgraph ${VERSION} (${role})`];
  lines.push(
    config.database.kind === 'pglite'
      ? `  database: embedded PGlite in ${config.database.dataDir}`
      : `  database: ${redactUrl(config.database.url)}`,
  );
  lines.push(
    config.queue.kind === 'disk'
      ? `  queue:    on disk in ${config.dataDir}/queue (fsynced before each 202)`
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
