import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { openDatabase } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { openPGliteFixture, openPostgresFixture, type DatabaseFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';
import { integrityContract } from './integrity.contract.js';

integrityContract('PostgreSQL', openPostgresFixture, { skip: !postgresAvailable });

// Every tamper scenario needs a pristine database, and migrating PGlite costs seconds: each
// fixture starts from a copy of one migrated data folder instead.
let template: Promise<string> | undefined;
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function openMigratedPGlite(): Promise<DatabaseFixture> {
  template ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-pglite-template-'));
    dirs.push(dir);
    const db = await openDatabase({ kind: 'pglite', dataDir: dir });
    await migrate(db);
    await db.close();
    return dir;
  })();
  return openPGliteFixture(await template);
}
integrityContract('PGlite on disk', openMigratedPGlite);
