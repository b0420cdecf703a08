/**
 * What the ingest bench makes, registered as it is made so that `cleanup()`
 * removes it at the end, on failure or on Ctrl-C: child processes, databases,
 * Redis streams; and the command lines it ran, for the report.
 */
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { environmentSchema } from '../../src/config/index.js';
import { ROOT, spawnChild, stopChild, type Child } from '../support/processes.js';
import { log } from './log.js';
import type { Options } from './options.js';

export const rel = (file: string) => path.relative(ROOT, file) || '.';

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]*$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The service's own configuration variables are cleared, so nothing leaks in from the caller's shell. */
export function serviceEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(environmentSchema.shape)) delete env[key];
  return { ...env, ...vars };
}

export function createResources(options: Options) {
  const commands: string[] = [];
  const children = new Set<Child>();
  const databases = new Set<string>();
  const streams = new Set<string>();
  const admin = new pg.Pool({ connectionString: `${options.pgUrl}/postgres`, max: 2 });
  admin.on('error', () => undefined);
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  redis.on('error', () => undefined);

  const recordCommand = (vars: Record<string, string>, argv: readonly string[]) => {
    const prefix = Object.entries(vars).map(([key, value]) => `${key}=${shellQuote(value)}`);
    commands.push(
      [...prefix, ...argv.map((arg) => shellQuote(arg.startsWith(ROOT) ? rel(arg) : arg))].join(' '),
    );
  };

  /** Stops a child: SIGTERM, then SIGKILL after `timeoutMs`. */
  const stop = async (child: Child, timeoutMs = 20_000): Promise<void> => {
    await stopChild(child, timeoutMs, () =>
      log(`${child.name} (pid ${child.proc.pid}) did not stop in ${timeoutMs} ms; killing it`),
    );
    children.delete(child);
  };

  /** Deletes the stream and every key the service derived from its name (dead letters, rate-limit counters). */
  const deleteStream = async (name: string): Promise<void> => {
    const keys = new Set([name, `${name}:dead`]);
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(
        cursor,
        'MATCH',
        `${name.replace(/[*?[\]\\]/g, '\\$&')}:*`,
        'COUNT',
        1000,
      );
      cursor = next;
      for (const key of found) keys.add(key);
    } while (cursor !== '0');
    await redis.del(...keys);
    streams.delete(name);
  };

  const dropDatabase = async (name: string): Promise<void> => {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    databases.delete(name);
  };

  return {
    commands,
    admin,
    redis,
    /** Starts `file args` with the service's environment cleared but for `vars`; `record: false` leaves it out of the report. */
    startChild(
      name: string,
      file: string,
      args: readonly string[],
      vars: Record<string, string>,
      record = true,
    ): Child {
      if (record) recordCommand(vars, [file === process.execPath ? 'node' : file, ...args]);
      const child = spawnChild(name, file, args, { env: serviceEnv(vars), keepChars: 200_000 });
      children.add(child);
      return child;
    },
    stop,
    /** A child that ended on its own: nothing left to stop. */
    forget: (child: Child) => void children.delete(child),
    async createDatabase(name: string): Promise<string> {
      databases.add(name);
      await admin.query(`CREATE DATABASE "${name}"`);
      return `${options.pgUrl}/${name}`;
    },
    dropDatabase,
    /** A stream the service will write: deleted at the end if not before. */
    addStream: (name: string) => void streams.add(name),
    deleteStream,
    async cleanup(): Promise<void> {
      for (const child of [...children]) await stop(child, 10_000).catch(() => undefined);
      for (const stream of [...streams]) {
        await deleteStream(stream).catch((error: unknown) =>
          log(`could not delete stream ${stream}: ${String(error)}`),
        );
      }
      for (const name of [...databases]) {
        await dropDatabase(name).catch((error: unknown) =>
          log(`could not drop database ${name}: ${String(error)}`),
        );
      }
    },
    async close(): Promise<void> {
      await redis.quit().catch(() => redis.disconnect());
      await admin.end().catch(() => undefined);
    },
  };
}
export type Resources = ReturnType<typeof createResources>;
