import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { VERSION } from './app/roles.js';
import { startAuditgraph, type Role } from './app/start.js';
import { ConfigError, loadConfig, redactUrl, type Config } from './config/index.js';
import { AppError } from './errors.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createApiKeyService } from './security/api-keys.js';
import { digestSecret, SCOPES, type KnownKey, type Scope } from './security/authenticate.js';
import { createApiKeyStore, type ApiKeyRecord } from './store/api-key-store.js';
import { openDatabase, type Database } from './store/database.js';
import { DataFolderInUseError } from './store/data-dir-lock.js';
import { migrate } from './store/migrate.js';
import { parsePublicKey } from './integrity/checkpoint.js';
import { generateSigningKeyPem, loadSigningKey } from './integrity/keys.js';
import { createIntegrityService } from './integrity/service.js';
import { createEventStore } from './store/event-store.js';
import { createIntegrityStore } from './store/integrity-store.js';

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
  keys signing             print a new Ed25519 checkpoint signing key (PKCS#8 PEM) for INTEGRITY_SIGNING_KEY
  verify [--from SEQ] [--to SEQ] [--public-key FILE] [--json]
            recompute the tamper-evident log and check the signed checkpoints; exits 1 when
            anything was modified, deleted, inserted or reordered (naming the first such event)
  help      this text

Configuration comes from the environment (and ./.env); see .env.template.
With embedded PGlite one process at a time opens the data folder: while a server runs on it,
'keys', 'migrate' and 'verify' refuse (exit 75); use the running server's admin GraphQL
operations (createApiKey, apiKeys, revokeApiKey) or stop it first.`;

const EX_USAGE = 64;
/** A server holds the embedded data folder: retry once it stopped, or go through it. */
const EX_TEMPFAIL = 75;
const EX_CONFIG = 78;

/** What to do instead, per command, when a running server holds the embedded data folder. */
const HELD_FOLDER_HINTS = {
  keys:
    'A server is running on this data folder, and a key made here would be lost. Manage keys through it ' +
    'instead: the createApiKey, apiKeys and revokeApiKey GraphQL operations (POST /graphql with an admin ' +
    'key in X-API-Key), or stop the server and run this again.',
  migrate: 'A server is running on this data folder; it applied the migrations when it started.',
  verify:
    'A server is running on this data folder: verify through it (GET /integrity/verify with an admin key), ' +
    'or stop it and run this again.',
} as const;

/** The command's database, or undefined (after saying why and what to do) when a server holds the folder. */
async function openForCommand(
  config: Config,
  command: keyof typeof HELD_FOLDER_HINTS,
): Promise<Database | undefined> {
  try {
    return await openDatabase(config.database);
  } catch (error) {
    if (!(error instanceof DataFolderInUseError)) throw error;
    console.error(`${error.message}\n${HELD_FOLDER_HINTS[command]}`);
    return undefined;
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const command = argv[0] ?? 'all';
  if (command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (!['all', 'serve', 'worker', 'migrate', 'keys', 'verify'].includes(command)) {
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
    const db = await openForCommand(config, 'migrate');
    if (!db) return EX_TEMPFAIL;
    try {
      const { applied } = await migrate(db);
      logger.info({ applied }, applied.length ? 'migrations applied' : 'database is up to date');
    } finally {
      await db.close();
    }
    return 0;
  }
  if (command === 'keys') return keys(argv.slice(1), config);
  if (command === 'verify') return verifyCommand(argv.slice(1), config);
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
  if (action === 'signing') {
    console.error(
      'A new checkpoint signing key; keep it secret (INTEGRITY_SIGNING_KEY or INTEGRITY_SIGNING_KEY_FILE):',
    );
    console.log(generateSigningKeyPem().trim());
    return 0;
  }
  const { values, positionals } = parseArgs({
    args: [...rest],
    allowPositionals: true,
    options: { name: { type: 'string' }, scopes: { type: 'string' }, 'rate-limit': { type: 'string' } },
  });
  const db = await openForCommand(config, 'keys');
  if (!db) return EX_TEMPFAIL;
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

/**
 * `auditgraph verify`: the same report as GET /integrity/verify, read straight
 * from the database. Signatures are checked with `--public-key` when given
 * (trusting nothing the database holds), else with the configured key.
 * @returns 0 intact, 1 tampering found, 64 bad usage, 78 a key that cannot be read.
 */
async function verifyCommand(args: readonly string[], config: Config): Promise<number> {
  let values: { from?: string; to?: string; 'public-key'?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        'public-key': { type: 'string' },
        json: { type: 'boolean' },
      },
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EX_USAGE;
  }
  let publicKey;
  try {
    const file = values['public-key'];
    publicKey = file
      ? parsePublicKey(await readFile(file, 'utf8'))
      : ((
          await loadSigningKey({
            signingKey: config.integrity.signingKey,
            signingKeyFile: config.integrity.signingKeyFile,
            dataDir: config.database.kind === 'pglite' ? config.dataDir : undefined,
            generate: false,
          })
        )?.publicKey ?? null);
  } catch (error) {
    console.error(`Cannot read the public key: ${error instanceof Error ? error.message : String(error)}`);
    return EX_CONFIG;
  }
  const db = await openForCommand(config, 'verify');
  if (!db) return EX_TEMPFAIL;
  try {
    await migrate(db);
    const service = createIntegrityService({
      store: createIntegrityStore(db),
      events: createEventStore(db),
      key: null,
      verifyKey: publicKey,
      checkpointIntervalMs: config.integrity.checkpointIntervalMs,
    });
    const report = await service.verify(values.from, values.to);
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else if (report.ok) {
      console.log(
        `OK: ${report.eventsChecked} events, ${report.leavesChecked} hashes and ${report.checkpointsChecked} checkpoints verified` +
          `${report.signaturesChecked ? '' : ' (signatures NOT checked: no key)'}; ${report.uncheckpointedLeaves} events not yet under a checkpoint` +
          `${report.retainedThroughSeq === null ? '' : `; bodies up to seq ${report.retainedThroughSeq} removed by retention`}.`,
      );
    } else {
      const problem = report.problem!;
      console.log(
        `FAILED: ${problem.kind} at seq ${problem.seq ?? '?'} (event ${problem.id ?? '?'}${problem.foundId ? `, found ${problem.foundId}` : ''}): ${problem.message}`,
      );
    }
    return report.ok ? 0 : 1;
  } catch (error) {
    if (error instanceof AppError) {
      console.error(error.message);
      return EX_USAGE;
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

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `auditgraph: ${error.message}` : error);
    process.exit(1);
  },
);
