import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/store/database.js';
import { DEFAULT_MIGRATIONS_DIR, migrate, MigrationError, readMigrations } from '../../src/store/migrate.js';
import { createTestDatabase, postgresAvailable } from '../support/services.js';

describe.skipIf(!postgresAvailable)('migrations on PostgreSQL', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const freshDatabase = async () => {
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    return database;
  };
  const connect = async (url: string): Promise<Database> => {
    const db = await openDatabase({ kind: 'postgres', url, poolSize: 2 });
    cleanups.push(() => db.close());
    return db;
  };

  it('applies each migration exactly once when several processes start together', async () => {
    const { url } = await freshDatabase();
    const connections = await Promise.all([connect(url), connect(url), connect(url)]);
    const results = await Promise.all(connections.map((db) => migrate(db)));
    const applied = results.flatMap((result) => result.applied);
    expect(applied.sort()).toEqual((await readMigrations()).map((migration) => migration.name));
    const [{ count }] = (await connections[0]!.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM "_prisma_migrations"',
    )) as [{ count: number }];
    expect(count).toBe(applied.length);
  });

  it('refuses to start when an applied migration was edited afterwards', async () => {
    const { url } = await freshDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-migrations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const db = await connect(url);
    await migrate(db, dir);
    const [first] = await readMigrations(dir);
    await writeFile(path.join(dir, first!.name, 'migration.sql'), `${first!.script}\n-- edited\n`);
    const failure = await migrate(db, dir).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(MigrationError);
    expect((failure as Error).message).toContain(`${first!.name} was modified`);
  });

  it('rolls a failing migration back whole and records nothing for it', async () => {
    const { url } = await freshDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-migrations-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const broken = path.join(dir, '99999999999999_broken');
    await cp(path.join(dir, (await readMigrations(dir))[0]!.name), broken, { recursive: true });
    await writeFile(
      path.join(broken, 'migration.sql'),
      'CREATE TABLE half_done (id int);\nSELECT * FROM missing_table;\n',
    );
    const db = await connect(url);
    await expect(migrate(db, dir)).rejects.toThrow(/99999999999999_broken failed and was rolled back/);
    const tables = await db.query<{ name: string | null }>("SELECT to_regclass('half_done')::text AS name");
    expect(tables[0]?.name).toBeNull();
    const recorded = await db.query('SELECT 1 FROM "_prisma_migrations" WHERE migration_name = $1', [
      '99999999999999_broken',
    ]);
    expect(recorded).toHaveLength(0);
  });
});
