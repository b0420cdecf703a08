import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeConnectionError } from '../../src/cli/connection-errors.js';
import { loadConfig } from '../../src/config/index.js';
import { spawnAuditgraph } from '../support/processes.js';
import { createTestDatabase, postgresAvailable } from '../support/services.js';

/** A port nothing listens on: taken from the kernel, then let go. */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function run(args: readonly string[], env: Record<string, string>) {
  const proc = spawnAuditgraph(args, env);
  const code = await proc.exited;
  return { code, output: proc.output() };
}

describe('an unreachable PostgreSQL is named with its URL and variable', () => {
  let port: number;
  beforeAll(async () => {
    port = await closedPort();
  });

  for (const command of ['keys list', 'verify', 'migrate', 'serve', 'worker']) {
    it(`by '${command}'`, async () => {
      const result = await run(command.split(' '), {
        DATABASE_URL: `postgresql://postgres:hunter2@127.0.0.1:${port}/none`,
        REDIS_URL: `redis://127.0.0.1:${port}`,
      });
      expect(result.code, result.output).toBe(1);
      expect(result.output).toContain(
        `Cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:${port}/none, from DATABASE_URL:`,
      );
      expect(result.output).toContain('ECONNREFUSED');
      expect(result.output).not.toContain('hunter2');
    });
  }

  it('names DATABASE_HOST and its companions too', async () => {
    const result = await run(['keys', 'list'], {
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(port),
      DATABASE_PASSWORD: 'hunter2',
    });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toMatch(
      /Cannot reach PostgreSQL at postgresql:\/\/\S+:\*\*\*@127\.0\.0\.1:\d+\/\S+, from/,
    );
    expect(result.output).toContain(
      'from DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER and DATABASE_PASSWORD:',
    );
    // The variable that gave the URL, not one the operator did not set.
    expect(result.output).not.toContain('DATABASE_URL');
    expect(result.output).not.toContain('hunter2');
  });
});

describe.skipIf(!postgresAvailable)('a PostgreSQL that refuses, or an unreachable Redis', () => {
  let database: Awaited<ReturnType<typeof createTestDatabase>>;
  let port: number;
  beforeAll(async () => {
    database = await createTestDatabase();
    port = await closedPort();
  });
  afterAll(async () => {
    await database?.drop();
  });

  it('says a database that does not exist, naming the variable', async () => {
    const missing = new URL(database.url);
    missing.pathname = `/${database.name}_missing`;
    const result = await run(['migrate'], { DATABASE_URL: missing.toString() });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain('from DATABASE_URL, has no such database');
    expect(result.output).toContain(`database "${database.name}_missing" does not exist`);
  });

  for (const role of ['serve', 'worker']) {
    it(`'${role}' names the Redis URL (password hidden) and REDIS_URL, with the socket's reason`, async () => {
      const result = await run([role], {
        DATABASE_URL: database.url,
        REDIS_URL: `redis://:hunter2@127.0.0.1:${port}`,
        ADMIN_API_KEY: 'an-admin-key-for-this-test',
      });
      expect(result.code, result.output).toBe(1);
      expect(result.output).toContain(
        `Cannot reach Redis at redis://:***@127.0.0.1:${port}, from REDIS_URL:`,
      );
      expect(result.output).toContain('ECONNREFUSED');
      expect(result.output).not.toContain('Connection is closed');
      expect(result.output).not.toContain('hunter2');
    });
  }

  it('names REDIS_HOST and REDIS_PORT when the URL is made of them', async () => {
    const result = await run(['worker'], {
      DATABASE_URL: database.url,
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(port),
    });
    expect(result.code, result.output).toBe(1);
    expect(result.output).toContain(`Cannot reach Redis at redis://127.0.0.1:${port}`);
    expect(result.output).toContain(
      `Cannot reach Redis at redis://127.0.0.1:${port}, from REDIS_HOST and REDIS_PORT:`,
    );
    expect(result.output).not.toContain('REDIS_URL');
  });
});

describe('describeConnectionError', () => {
  const postgres = loadConfig({ DATABASE_URL: 'postgresql://app:secret@db.internal:5432/audit' });

  it("joins an AggregateError's parts (a host with IPv4 and IPv6 addresses)", () => {
    const refused = (address: string) =>
      Object.assign(new Error(`connect ECONNREFUSED ${address}:5432`), { code: 'ECONNREFUSED' });
    const error = Object.assign(new AggregateError([refused('::1'), refused('127.0.0.1')], ''), {
      code: 'ECONNREFUSED',
    });
    expect(describeConnectionError(error, postgres)).toBe(
      'Cannot reach PostgreSQL at postgresql://app:***@db.internal:5432/audit, from DATABASE_URL: ' +
        'connect ECONNREFUSED ::1:5432; connect ECONNREFUSED 127.0.0.1:5432',
    );
  });

  it('says a refused login is one', () => {
    const error = Object.assign(new Error('password authentication failed for user "app"'), {
      code: '28P01',
    });
    expect(describeConnectionError(error, postgres)).toMatch(
      /, refused the login: password authentication failed/,
    );
  });

  it('leaves other errors alone: a file system error, a query refused, embedded PGlite', () => {
    const noFile = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', syscall: 'open' });
    expect(describeConnectionError(noFile, postgres)).toBeUndefined();
    const syntax = Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' });
    expect(describeConnectionError(syntax, postgres)).toBeUndefined();
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(describeConnectionError(refused, loadConfig({}))).toBeUndefined();
  });
});
