import crypto, { createHash } from 'node:crypto';
import { canonicalize } from './canonical.js';

/**
 * The fields of an event that its leaf hash covers: every stored column, named
 * as the GraphQL API names them. Timestamps are ISO 8601 in UTC with exactly
 * three fractional digits (`2026-11-26T15:00:00.000Z`, what `Date#toISOString`
 * prints and what the API returns); `seq` is a decimal string; `clientTime` and
 * `apiKeyId` are `null` when absent. A client rebuilds this from an event as
 * the API returns it (GraphQL, or REST with its snake_case names) and hashes it
 * with {@link leafHashOf}.
 */
export interface LeafRecord {
  id: string;
  seq: string;
  eventType: string;
  sessionId: string;
  payload: Record<string, unknown>;
  clientTime: string | null;
  receivedAt: string;
  persistedAt: string;
  apiKeyId: string | null;
}

/** Anything shaped like a stored event: Dates or ISO strings for the times, seq as string or bigint. */
export interface EventLike {
  id: string;
  seq: string | bigint | number;
  eventType: string;
  sessionId: string;
  payload: unknown;
  clientTime: Date | string | null;
  receivedAt: Date | string;
  persistedAt: Date | string;
  apiKeyId: string | null;
}

const LEAF_PREFIX = Buffer.from([0x00]);

/** A time as the leaf hashes it: UTC, millisecond precision, as PostgreSQL's timestamptz(3) stores it. */
const CANONICAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function leafTime(value: Date | string): string {
  // Already in the one form (what the API and the verification query return): no Date round trip.
  if (typeof value === 'string' && CANONICAL_TIME.test(value)) return value;
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) throw new TypeError(`not a date-time: ${String(value)}`);
  return date.toISOString();
}

function toLeafRecord(event: EventLike): LeafRecord {
  return {
    id: event.id.toLowerCase(),
    seq: String(event.seq),
    eventType: event.eventType,
    sessionId: event.sessionId,
    payload: event.payload as Record<string, unknown>,
    clientTime: event.clientTime === null ? null : leafTime(event.clientTime),
    receivedAt: leafTime(event.receivedAt),
    persistedAt: leafTime(event.persistedAt),
    apiKeyId: event.apiKeyId,
  };
}

/** SHA-256(0x00 || RFC 8785 canonical JSON of the event's {@link LeafRecord}). */
export function leafHashOf(event: EventLike): Buffer {
  return createHash('sha256')
    .update(LEAF_PREFIX)
    .update(canonicalize(toLeafRecord(event)), 'utf8')
    .digest();
}

/**
 * {@link leafHashOf} split where the store learns an event's last two fields:
 * everything but `seq` and `persistedAt` (the payload's canonical form is the
 * costly part) is serialized now, before the insert takes its lock, and the
 * returned function finishes the same RFC 8785 text and hashes it. The fields
 * are written in canonical key order: apiKeyId, clientTime, eventType, id,
 * payload, persistedAt, receivedAt, seq, sessionId.
 */
export function prepareLeafHash(
  record: Omit<LeafRecord, 'seq' | 'persistedAt'>,
  /** `canonicalize(record.payload)`, when the caller has it already. */
  canonicalPayload: string = canonicalize(record.payload),
): (seq: string, persistedAt: string) => Buffer {
  const head =
    `{"apiKeyId":${canonicalize(record.apiKeyId)},"clientTime":${canonicalize(record.clientTime)}` +
    `,"eventType":${canonicalize(record.eventType)},"id":${canonicalize(record.id)}` +
    `,"payload":${canonicalPayload},"persistedAt":`;
  const receivedAt = canonicalize(record.receivedAt);
  const sessionId = canonicalize(record.sessionId);
  return (seq, persistedAt) =>
    sha256(
      `\u0000${head}${JSON.stringify(persistedAt)},"receivedAt":${receivedAt},"seq":${JSON.stringify(seq)},"sessionId":${sessionId}}`,
    );
}

// One call, no Hash object (Node 20.12+): this runs for every event stored, between the
// insert's two round trips. U+0000 is the 0x00 leaf prefix in UTF-8.
const sha256: (text: string) => Buffer =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'buffer')
    : (text) => createHash('sha256').update(text, 'utf8').digest();
