/**
 * What a failed write means for retrying it, decided closed-world: only
 * failures known to pass (the connection, the server starting or stopping,
 * lock and serialization conflicts, exhausted resources) are `transient`.
 * Failures known to repeat (bad data, constraints, triggers, an event that
 * cannot be encoded) are `permanent`. Anything else is `unknown`: the worker
 * retries it a bounded number of times, then treats it as permanent.
 */
export type FailureClass = 'transient' | 'permanent' | 'unknown';

/** An event the store can never write as it is (its payload cannot be encoded). */
export class UnstorableEventError extends Error {
  constructor(
    readonly eventId: string,
    cause: unknown,
  ) {
    super(`event ${eventId} cannot be stored: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = 'UnstorableEventError';
  }
}

/** SQLSTATEs (and classes) of failures that pass: https://www.postgresql.org/docs/15/errcodes-appendix.html */
const TRANSIENT_SQLSTATE_CLASSES = new Set([
  '08', // connection exception
  '53', // insufficient resources: too many connections, out of memory, disk full
  '58', // system error: I/O error
]);
const TRANSIENT_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
  '55006', // object_in_use
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '57P05', // idle_session_timeout
]);
/** SQLSTATEs that say nothing about the data: a canceled statement or an internal error may pass or not. */
const UNKNOWN_SQLSTATES = new Set(['57014', 'XX000']);

/** Node's socket and DNS errors. */
const TRANSIENT_SYSTEM_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** node-postgres's and pg-pool's connection failures, which carry no code. */
const TRANSIENT_DRIVER_MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^timeout expired/,
  /^Query read timeout/,
  /^Client has encountered a connection error/,
  /^Client was closed and is not queryable/,
];

const SQLSTATE = /^[0-9A-Z]{5}$/;

export function classifyStoreError(error: unknown): FailureClass {
  if (error instanceof UnstorableEventError) return 'permanent';
  const code = (error as { code?: unknown } | null)?.code;
  // Before SQLSTATEs: EPIPE has their shape.
  if (typeof code === 'string' && TRANSIENT_SYSTEM_CODES.has(code)) return 'transient';
  if (typeof code === 'string' && SQLSTATE.test(code)) {
    if (TRANSIENT_SQLSTATES.has(code) || TRANSIENT_SQLSTATE_CLASSES.has(code.slice(0, 2))) return 'transient';
    if (UNKNOWN_SQLSTATES.has(code)) return 'unknown';
    return 'permanent';
  }
  const message = error instanceof Error ? error.message : '';
  if (TRANSIENT_DRIVER_MESSAGES.some((pattern) => pattern.test(message))) return 'transient';
  return 'unknown';
}

/** Prisma's codes for an unreachable server, a timed-out or dropped connection, and an exhausted pool. */
const PRISMA_UNAVAILABLE = new Set(['P1001', 'P1002', 'P1017', 'P2024']);
/** SQLSTATEs of a server that is down, starting, stopping or full; the 08 class is added below. */
const SQL_UNAVAILABLE = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * Whether `error` says the database cannot be reached right now (as opposed to
 * a query it refused): front doors answer 503 with Retry-After for these, not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (/^E[A-Z]+$/.test(code)) return true; // ECONNREFUSED, ECONNRESET, ETIMEDOUT…
    if (PRISMA_UNAVAILABLE.has(code) || SQL_UNAVAILABLE.has(code) || code.startsWith('08')) return true;
  }
  const message = error instanceof Error ? error.message : '';
  return /^Connection terminated|timeout exceeded when trying to connect/.test(message);
}
