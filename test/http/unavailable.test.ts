import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { AppError } from '../../src/errors.js';
import { toErrorResponse } from '../../src/http/error-response.js';
import { openDatabase } from '../../src/store/database.js';
import { freePort } from '../support/app.js';

/** What the database layer really throws when nothing listens: from pg itself and through Prisma's adapter. */
async function unreachableDatabaseErrors(): Promise<unknown[]> {
  const url = `postgresql://postgres@127.0.0.1:${await freePort()}/nowhere`;
  const errors: unknown[] = [];
  const db = await openDatabase({ kind: 'postgres', url, poolSize: 1 });
  try {
    await db.prisma.auditEvent.findFirst().catch((error: unknown) => errors.push(error));
    await db.query('SELECT 1').catch((error: unknown) => errors.push(error));
  } finally {
    await db.close();
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect().catch((error: unknown) => errors.push(error));
  return errors;
}

describe('an unreachable database at the front door', () => {
  it('answers 503 with Retry-After and a message that leaks nothing, for pg and Prisma errors alike', async () => {
    const errors = await unreachableDatabaseErrors();
    expect(errors).toHaveLength(3);
    for (const error of errors) {
      const { status, body, headers } = toErrorResponse(error);
      expect(status).toBe(503);
      expect(headers['retry-after']).toBe('5');
      expect(body.error).toEqual({
        code: 'SERVICE_UNAVAILABLE',
        message: 'The database is unavailable; retry later.',
      });
    }
  });

  it('still answers 500 for a failure that is not about reaching the database', () => {
    const { status, body } = toErrorResponse(
      Object.assign(new Error('relation "x" does not exist'), { code: '42P01' }),
    );
    expect(status).toBe(500);
    expect(body.error.message).toBe('Internal server error.');
    expect(toErrorResponse(new AppError('QUEUE_FULL', 'full', { retryAfterSeconds: 1 })).status).toBe(503);
  });
});
