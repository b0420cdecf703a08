import { redactUrl, type Config } from '../config/index.js';
import { isDatabaseUnavailable } from '../failure-class.js';

/** Where the PostgreSQL URL may come from, when the configuration does not say which. */
const DATABASE_VARIABLES =
  'DATABASE_URL (or DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER and DATABASE_PASSWORD)';

/** Socket and DNS failures: the server named is not there (a file-system error is not one). */
const NETWORK_CODE = /^E(CONN|HOST|NET|AI_|NOTFOUND|TIMEDOUT|PIPE)/;

/**
 * What to tell the operator when `error` is PostgreSQL refusing or not answering:
 * the (password-hidden) URL, the variables it comes from, and the driver's reason.
 * node-postgres reports these bare (`connect ECONNREFUSED 127.0.0.1:5432`), naming
 * neither. Undefined for any other error, which is then reported as it is.
 * Redis needs no such translation: src/queue/redis-connect.ts names its variable.
 */
export function describeConnectionError(error: unknown, config: Config): string | undefined {
  if (config.database.kind !== 'postgres') return undefined;
  const at = `PostgreSQL at ${redactUrl(config.database.url)}, from ${config.database.from ?? DATABASE_VARIABLES}`;
  const code = (error as { code?: unknown } | null)?.code;
  const reason = reasonOf(error);
  if (typeof code === 'string' && code.startsWith('28')) {
    return `${at}, refused the login: ${reason} (check the user and password)`;
  }
  if (code === '3D000') {
    return `${at}, has no such database: ${reason} (create it, e.g. with createdb, or name another)`;
  }
  const systemCode = typeof code === 'string' && /^E[A-Z_]+$/.test(code);
  if (systemCode ? NETWORK_CODE.test(code) : isDatabaseUnavailable(error)) {
    return `Cannot reach ${at}: ${reason}`;
  }
  return undefined;
}

/** The message, or for an AggregateError (a host with IPv4 and IPv6 addresses) its parts'. */
function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (error.message) return error.message;
  if (error instanceof AggregateError) {
    const parts = error.errors.map((part: unknown) => (part instanceof Error ? part.message : String(part)));
    if (parts.length) return [...new Set(parts)].join('; ');
  }
  return String((error as { code?: unknown }).code ?? error.name);
}
