import type { Redis } from 'ioredis';
import { ConfigError, redactUrl } from '../config/index.js';

/** Where a Redis URL may come from, when the caller does not say which. */
const URL_VARIABLES = 'REDIS_URL (or REDIS_HOST and REDIS_PORT)';

/**
 * Connects `redis` (made with `lazyConnect`) and proves it talks to the database
 * its URL names. ioredis sends the URL's `SELECT` on connecting but only emits
 * its failure as an 'error' event and carries on in database 0, so
 * `redis://host/99` on a 16-database server would write into database 0
 * unnoticed: the SELECT is sent again here and its answer checked.
 * @throws ConfigError naming REDIS_URL when the database does not exist on the server.
 * @throws Error naming the (password-redacted) URL and its variable when Redis cannot be reached.
 *   Either way the client is disconnected, so it stops retrying in the background.
 */
export async function connectRedis(redis: Redis, url: string, from = URL_VARIABLES): Promise<void> {
  // connect() rejects with a bare "Connection is closed."; why it closed (refused, unknown
  // host, timed out) arrives as an 'error' event just before.
  let socketError: unknown;
  const remember = (error: unknown) => (socketError ??= error);
  redis.on('error', remember);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const reason = reasonOf(socketError ?? error);
    throw new Error(`Cannot reach Redis at ${redactUrl(url)}, from ${from}: ${reason}`, {
      cause: socketError ?? error,
    });
  } finally {
    redis.off('error', remember);
  }
  const db = redis.options.db ?? 0;
  try {
    await redis.select(db);
  } catch (error) {
    redis.disconnect();
    const reason = error instanceof Error ? error.message : String(error);
    if (!/DB index|invalid DB|out of range/i.test(reason)) throw error;
    const count = await databaseCount(redis);
    throw new ConfigError([
      `REDIS_URL: names database ${db}, which this Redis does not have` +
        `${count === undefined ? '' : ` (it has ${count}: 0 to ${count - 1})`}; ` +
        'refusing to start rather than write into database 0',
    ]);
  }
}

/** The server's `databases` setting, when CONFIG GET is allowed (managed Redis often renames it). */
async function databaseCount(failed: Redis): Promise<number | undefined> {
  const probe = failed.duplicate({ db: 0, lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const reply = (await probe.config('GET', 'databases')) as unknown;
    const value = Array.isArray(reply) ? Number(reply[1]) : Number.NaN;
    return Number.isInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  } finally {
    probe.disconnect();
  }
}

/** An error's message; a host with IPv4 and IPv6 addresses fails with an AggregateError whose own is empty. */
function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.message) return error.message;
  const parts = error instanceof AggregateError ? error.errors.map((part: unknown) => String(part)) : [];
  return parts.length
    ? [...new Set(parts)].join('; ')
    : String((error as { code?: unknown }).code ?? error.name);
}
