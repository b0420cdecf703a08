import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openDatabase } from '../../src/store/database.js';
import { createTestDatabase, postgresAvailable } from '../support/services.js';
import { analyticsContract } from './analytics.contract.js';

analyticsContract(
  'PostgreSQL',
  async () => {
    const database = await createTestDatabase();
    const db = await openDatabase({ kind: 'postgres', url: database.url, poolSize: 4 });
    return {
      db,
      async dispose() {
        await db.close();
        await database.drop();
      },
    };
  },
  { skip: !postgresAvailable },
);

analyticsContract('PGlite on disk', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-pglite-'));
  const db = await openDatabase({ kind: 'pglite', dataDir: dir });
  return {
    db,
    async dispose() {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
