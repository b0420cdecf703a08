import { z } from 'zod';
import { badRequest } from '../errors.js';

/**
 * What PostgreSQL (and PGlite) can take as a query parameter, checked at the
 * front doors so that a value it would refuse is the caller's 400 naming the
 * parameter, not a 500 from the driver. One rule per kind of value; REST's zod
 * schemas, the GraphQL scalars and the query services all use these.
 */

/**
 * Instants accepted in filters: years 1 to 9999 in UTC. PostgreSQL's timestamptz
 * reaches further, but Prisma and the drivers format years outside four digits
 * (year 0, 10000) in ways it refuses, and no audit event lives there.
 */
const EARLIEST_INSTANT_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST_INSTANT_MS = Date.parse('9999-12-31T23:59:59.999Z');

export const UNSTORABLE_TEXT = 'must not contain NUL characters or unpaired surrogates';
export const INSTANT_RANGE = 'must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z (UTC)';

/** Text PostgreSQL can hold: no NUL (text refuses it) and no unpaired surrogate (not UTF-8). */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && text.isWellFormed();
}

/** A zod string of at most `max` characters that PostgreSQL can hold. */
export const storableText = (max: number) =>
  z.string().max(max, `must be at most ${max} characters`).refine(isStorableText, UNSTORABLE_TEXT);

/** @throws AppError BAD_REQUEST naming `field` for text PostgreSQL cannot hold or longer than `max`. */
export function checkText(text: string, field: string, max: number): string {
  if (!isStorableText(text))
    throw badRequest(`${field} ${UNSTORABLE_TEXT}`, [{ field, message: UNSTORABLE_TEXT }]);
  if (text.length > max) {
    const message = `must be at most ${max} characters`;
    throw badRequest(`${field} ${message}`, [{ field, message }]);
  }
  return text;
}

/** Whether `ms` (a Date's time) is a real instant within {@link EARLIEST_INSTANT_MS}..{@link LATEST_INSTANT_MS}. */
export function isStorableInstant(ms: number): boolean {
  return Number.isFinite(ms) && ms >= EARLIEST_INSTANT_MS && ms <= LATEST_INSTANT_MS;
}

/** @throws AppError BAD_REQUEST naming `field` for an invalid date or one outside years 1..9999 UTC. */
export function checkInstant(date: Date, field: string): Date {
  if (!isStorableInstant(date.getTime()))
    throw badRequest(`${field} ${INSTANT_RANGE}`, [{ field, message: INSTANT_RANGE }]);
  return date;
}
