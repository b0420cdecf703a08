import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase, type Database } from '../../src/store/database.js';
import { createTestDatabase } from './services.js';

export interface DatabaseFixture {
  db: Database;
  dispose(): Promise<void>;
}

/** A fresh PostgreSQL database of this test run, opened (not migrated). */
export async function openPostgresFixture(): Promise<DatabaseFixture> {
  const database = await createTestDatabase();
  const db = await openDatabase({ kind: 'postgres', url: database.url, poolSize: 4 });
  return {
    db,
    async dispose() {
      await db.close();
      await database.drop();
    },
  };
}

/**
 * A fresh PGlite database on disk in a temporary folder, opened (not migrated),
 * or a copy of the closed database in `template` (a migrated one, made once).
 */
export async function openPGliteFixture(template?: string): Promise<DatabaseFixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-pglite-'));
  if (template !== undefined) await cp(template, dir, { recursive: true });
  const db = await openDatabase({ kind: 'pglite', dataDir: dir });
  return {
    db,
    async dispose() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
