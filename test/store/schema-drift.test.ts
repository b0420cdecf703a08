/**
 * prisma/schema.prisma is the source of truth for the tables, and prisma/migrations/ is what
 * deploys them: this proves the two agree by replaying the migrations into a throwaway database
 * and letting Prisma's own schema engine diff the result against the schema.
 *
 * Needs PostgreSQL (TEST_POSTGRES_URL, or the local default). Without it the suite is skipped with
 * a warning, except under CI=true, where an unreachable database fails it. Its throwaway databases
 * carry this run's test prefix, so the global teardown also drops any a crashed run left behind.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createSchemaEngine, DEFAULT_ADMIN_URL, type SchemaDiffEngine } from '../support/schema-engine.js';
import { TEST_DATABASE_PREFIX } from '../support/services.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const schemaPath = path.join(root, 'prisma/schema.prisma');
const migrationsDir = path.join(root, 'prisma/migrations');
// Same variable and default as the other integration suites (test/support/services.ts).
const adminUrl = process.env['TEST_POSTGRES_URL'] ?? DEFAULT_ADMIN_URL;
const inCi = process.env['CI'] === 'true';
// Replaying migrations takes about a second; the margin is for loaded CI machines.
const TIMEOUT_MS = 60_000;

const unreachable = await probePostgres(adminUrl);
if (unreachable !== undefined && !inCi) {
  console.warn(
    `\n!!! SKIPPING test/store/schema-drift.test.ts: PostgreSQL is unreachable at ${redact(adminUrl)} ` +
      `(${unreachable}). Schema/migration drift is NOT checked. Start PostgreSQL or set TEST_POSTGRES_URL; ` +
      `under CI=true this is a failure.\n`,
  );
}

describe.skipIf(unreachable !== undefined && !inCi)('prisma/migrations against prisma/schema.prisma', () => {
  let engine: SchemaDiffEngine | undefined;

  beforeAll(async () => {
    if (unreachable !== undefined) {
      throw new Error(`CI=true and PostgreSQL is unreachable at ${redact(adminUrl)}: ${unreachable}`);
    }
    engine = await createSchemaEngine({ adminUrl, databasePrefix: `${TEST_DATABASE_PREFIX}drift` });
  }, TIMEOUT_MS);

  afterAll(async () => {
    await engine?.dispose();
  }, TIMEOUT_MS);

  const started = (): SchemaDiffEngine => {
    if (!engine) throw new Error('schema engine did not start');
    return engine;
  };

  it(
    'the migrations produce exactly the schema (no drift)',
    async () => {
      const diff = await started().diffMigrationsToSchema({ migrationsDir, schemaPath });

      expect(
        diff.empty,
        `prisma/migrations/ does not produce prisma/schema.prisma. The missing SQL is:\n\n${diff.sql}\n` +
          'Add it as a new migration: npx tsx scripts/migration-sql.ts --name <name>',
      ).toBe(true);
    },
    TIMEOUT_MS,
  );

  it(
    'a schema with a column the migrations lack is reported as drift',
    async () => {
      const schema = await readFile(schemaPath, 'utf8');
      const anchor = '  @@map("audit_events")';
      expect(schema, 'the AuditEvent model to alter is gone; update this test').toContain(anchor);
      const altered = schema.replace(anchor, `  driftProbe String? @map("drift_probe")\n\n${anchor}`);
      const scratch = await mkdtemp(path.join(tmpdir(), 'ag-schema-drift-'));
      try {
        const alteredPath = path.join(scratch, 'schema.prisma');
        await writeFile(alteredPath, altered);

        const diff = await started().diffMigrationsToSchema({ migrationsDir, schemaPath: alteredPath });

        expect(diff.empty).toBe(false);
        expect(diff.sql).toMatch(/ALTER TABLE "audit_events" ADD COLUMN\s+"drift_probe" TEXT;/);
      } finally {
        await rm(scratch, { recursive: true, force: true });
      }
    },
    TIMEOUT_MS,
  );
});

/**
 * Why PostgreSQL cannot be reached at `url`, or undefined when a server answers. A server that
 * answers with an error (bad password, missing database) counts as reachable: that is a broken
 * setup, which the suite reports by failing rather than skipping.
 */
async function probePostgres(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (error) {
    if (error instanceof pg.DatabaseError) return undefined;
    return error instanceof Error ? error.message || error.name : String(error);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparseable TEST_POSTGRES_URL>';
  }
}
