import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, environmentSchema, loadConfig, redactUrl } from '../../src/config/index.js';

const load = (env: Record<string, string>) => loadConfig(env, '/srv/app');

describe('configuration', () => {
  it('runs embedded with nothing configured: PGlite and the queue on disk in the data folder, spec ports', () => {
    const config = load({});
    expect(config.embedded).toBe(true);
    expect(config.database).toEqual({ kind: 'pglite', dataDir: '/srv/app/.auditgraph-data/pglite' });
    expect(config.queue.kind).toBe('disk');
    expect(config.http.ports).toEqual([8001, 8002]);
    expect(config.http.maxBodyBytes).toBe(1024 * 1024);
    expect(config.rateLimitPerMinute).toBe(1000);
  });

  it("builds the database URL from the spec's DATABASE_* parts, with the spec's defaults", () => {
    const config = load({ DATABASE_HOST: 'db.internal', DATABASE_PASSWORD: 'p@ss word' });
    expect(config.database).toMatchObject({
      kind: 'postgres',
      url: 'postgresql://logging_service_user:p%40ss%20word@db.internal:5432/code_reviewer_logs',
    });
    expect(config.embedded).toBe(false);
  });

  it('prefers DATABASE_URL and REDIS_URL over the parts', () => {
    const config = load({
      DATABASE_URL: 'postgresql://u@h:1/d',
      DATABASE_HOST: 'ignored',
      DATABASE_PASSWORD: 'x',
      REDIS_URL: 'redis://r:7000',
      REDIS_HOST: 'ignored',
    });
    expect(config.database).toMatchObject({
      kind: 'postgres',
      url: 'postgresql://u@h:1/d',
      from: 'DATABASE_URL',
    });
    expect(config.queue).toMatchObject({ kind: 'redis', url: 'redis://r:7000', from: 'REDIS_URL' });
  });

  it('records which variables gave each URL, for messages that say what to fix', () => {
    const config = load({ DATABASE_HOST: 'db', DATABASE_PASSWORD: 'x', REDIS_HOST: 'cache' });
    expect(config.database).toMatchObject({ from: expect.stringMatching(/^DATABASE_HOST, DATABASE_PORT/) });
    expect(config.queue).toMatchObject({ from: 'REDIS_HOST and REDIS_PORT' });
    expect(load({ USE_REDIS_QUEUE: 'true' }).queue).toMatchObject({
      from: expect.stringMatching(/^USE_REDIS_QUEUE/),
    });
  });

  it("honours REDIS_HOST/REDIS_PORT and the spec's USE_REDIS_QUEUE", () => {
    expect(load({ REDIS_HOST: 'cache', REDIS_PORT: '6380' }).queue).toMatchObject({
      url: 'redis://cache:6380',
    });
    expect(load({ USE_REDIS_QUEUE: 'true' }).queue).toMatchObject({ url: 'redis://localhost:6379' });
    expect(load({ USE_REDIS_QUEUE: 'false' }).queue.kind).toBe('disk');
  });

  it('listens once when both spec ports are the same', () => {
    expect(load({ PRODUCER_PORT: '9000', QUERY_SERVICE_PORT: '9000' }).http.ports).toEqual([9000]);
  });

  it('reports every problem at once, naming each variable but never echoing a value', () => {
    const secret = 'short';
    let error: unknown;
    try {
      load({
        PRODUCER_PORT: 'eighty',
        DATABASE_URL: 'mysql://nope',
        ADMIN_API_KEY: secret,
        LOGGING_ENABLED: 'maybe',
        WORKER_BATCH_SIZE: '0',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    for (const name of [
      'PRODUCER_PORT',
      'DATABASE_URL',
      'ADMIN_API_KEY',
      'LOGGING_ENABLED',
      'WORKER_BATCH_SIZE',
    ]) {
      expect(problems.some((problem) => problem.startsWith(`${name}:`))).toBe(true);
    }
    expect((error as Error).message).not.toContain(secret);
  });

  it('requires the password when the database is given by parts', () => {
    expect(() => load({ DATABASE_HOST: 'db' })).toThrow(/DATABASE_PASSWORD/);
  });

  it('treats blank values as unset, as .env files written from the template have them', () => {
    expect(load({ DATABASE_URL: '', REDIS_URL: '  ', ADMIN_API_KEY: '' }).embedded).toBe(true);
  });

  it('.env.template lists exactly the variables the schema reads, and the template itself is valid', () => {
    const template = readFileSync(new URL('../../.env.template', import.meta.url), 'utf8');
    const entries = template
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => line.split('=', 2) as [string, string]);
    expect(entries.map(([name]) => name).sort()).toEqual(Object.keys(environmentSchema.shape).sort());
    expect(() => load(Object.fromEntries(entries))).not.toThrow();
  });

  it('redacts passwords from connection strings shown in logs', () => {
    expect(redactUrl('postgresql://user:hunter2@db:5432/x')).toBe('postgresql://user:***@db:5432/x');
    expect(redactUrl('redis://r:6379')).toBe('redis://r:6379');
  });
});
