/**
 * Prints the SQL that takes the database built by prisma/migrations/ to prisma/schema.prisma:
 * the body of the next migration, which `prisma migrate dev` would write if its schema engine
 * binary could be downloaded here (see test/support/schema-engine.ts for why it cannot).
 *
 *   npx tsx scripts/migration-sql.ts               print the SQL
 *   npx tsx scripts/migration-sql.ts --name NAME   write it to prisma/migrations/<UTC timestamp>_NAME/migration.sql
 *
 * Needs PostgreSQL: DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres) names a
 * server on which it creates, and then drops, throwaway `ag_migration_sql_*` databases; nothing
 * else there is read or written. Exit codes: 0 done (also when there is nothing to migrate),
 * 1 failure, 2 bad usage.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { createSchemaEngine, DEFAULT_ADMIN_URL } from '../test/support/schema-engine.js';

const USAGE = 'usage: npx tsx scripts/migration-sql.ts [--name <migration_name>]';
const MIGRATION_NAME = /^[a-z0-9_]{1,100}$/;

const root = fileURLToPath(new URL('../', import.meta.url));
const schemaPath = path.join(root, 'prisma/schema.prisma');
const migrationsDir = path.join(root, 'prisma/migrations');

async function main(): Promise<number> {
  let name: string | undefined;
  try {
    const { values } = parseArgs({
      options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    name = values.name;
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (name !== undefined && !MIGRATION_NAME.test(name)) {
    console.error(
      `--name must be lowercase letters, digits and underscores (like Prisma's), got ${JSON.stringify(name)}`,
    );
    return 2;
  }

  const engine = await createSchemaEngine({
    adminUrl: process.env['DATABASE_URL'] ?? DEFAULT_ADMIN_URL,
    databasePrefix: 'ag_migration_sql',
  });
  try {
    const diff = await engine.diffMigrationsToSchema({ migrationsDir, schemaPath });
    if (diff.empty) {
      console.error('prisma/migrations/ already produces prisma/schema.prisma: no migration needed.');
      return 0;
    }
    if (name === undefined) {
      process.stdout.write(diff.sql);
      return 0;
    }
    const directory = path.join(migrationsDir, `${utcTimestamp(new Date())}_${name}`);
    // Fails if the directory exists: never overwrite a migration.
    await mkdir(directory);
    const file = path.join(directory, 'migration.sql');
    await writeFile(file, diff.sql, { flag: 'wx' });
    console.error(`wrote ${path.relative(process.cwd(), file)}; review it before committing.`);
    return 0;
  } finally {
    await engine.dispose();
  }
}

/** `YYYYMMDDHHMMSS` in UTC, the prefix Prisma gives migration directories. */
function utcTimestamp(date: Date): string {
  return date.toISOString().replace(/\D/g, '').slice(0, 14);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
