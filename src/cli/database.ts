import type { Config } from '../config/index.js';
import { createLogger } from '../observability/logger.js';
import { DataFolderInUseError } from '../store/data-dir-lock.js';
import { openDatabase, type Database } from '../store/database.js';
import { migrate } from '../store/migrate.js';
import { EX_TEMPFAIL } from './commands.js';

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
export async function openForCommand(
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

/** `auditgraph migrate`: applies what is missing and exits. */
export async function migrateCommand(config: Config): Promise<number> {
  const logger = createLogger({ level: config.logLevel });
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
