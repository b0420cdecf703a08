import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAuditgraph } from '../support/processes.js';
import { createTestDatabase, postgresAvailable } from '../support/services.js';

describe.skipIf(!postgresAvailable)('auditgraph keys (CLI)', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  const keys = async (...args: string[]) => {
    const proc = spawnAuditgraph(['keys', ...args], { DATABASE_URL: database.url });
    const code = await proc.exited;
    return { code, stdout: proc.stdout(), output: proc.output() };
  };

  it('creates a key printing only its secret on stdout, lists it without the secret, and revokes it', async () => {
    const created = await keys(
      'create',
      '--name',
      'gateway',
      '--scopes',
      'ingest,read',
      '--rate-limit',
      '50',
    );
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^ag_[a-z2-7]{8}_[A-Za-z0-9_-]{43}$/);
    const id = /Created (key_[0-9a-f]+)/.exec(created.output)![1]!;

    const listed = await keys('list');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(id);
    expect(listed.stdout).toContain(secret.slice(0, 11));
    expect(listed.stdout).toContain('ingest,read');
    expect(listed.stdout).toContain('50/min');
    expect(listed.stdout).not.toContain(secret);

    const revoked = await keys('revoke', id);
    expect(revoked.code).toBe(0);
    expect((await keys('list')).stdout).toMatch(new RegExp(`${id}.*revoked`));
    expect((await keys('revoke', 'key_missing')).code).toBe(1);
  }, 60_000);

  it('refuses a bad scope or a missing name, naming the problem', async () => {
    const badScope = await keys('create', '--name', 'x', '--scopes', 'ingest,root');
    expect(badScope.code).toBe(64);
    expect(badScope.output).toMatch(/scopes\.1 must each be one of ingest, read, admin/);
    const noName = await keys('create', '--scopes', 'read');
    expect(noName.code).toBe(64);
    expect(noName.output).toMatch(/name must not be empty/);
  }, 60_000);
});
