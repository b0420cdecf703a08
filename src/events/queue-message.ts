import { z } from 'zod';
import {
  logRequestSchema,
  MAX_SESSION_ID_LENGTH,
  readLogRequestFast,
  sessionIdNumberSchema,
  sessionIdTextSchema,
  type LogRequest,
} from './log-request.js';

/**
 * What travels through the queue from the API to the worker: a message of one
 * of two versions, told apart by `v`. Changes are additive only: messages
 * already queued by an older API must still parse, so a worker reads every
 * version an API of its release or an older one writes (upgrade workers before APIs).
 *
 * The event message (`v: 1`): the event, as the worker stores it.
 */
export const eventMessageSchema = z.object({
  v: z.literal(1),
  id: z.uuid(),
  eventType: z.string().min(1).max(64),
  sessionId: z.string().min(1).max(MAX_SESSION_ID_LENGTH),
  payload: z.record(z.string(), z.unknown()),
  clientTime: z.iso.datetime({ offset: true }).nullable(),
  receivedAt: z.iso.datetime({ offset: true }),
  apiKeyId: z.string().max(64).nullable(),
});

export type QueuedEvent = z.infer<typeof eventMessageSchema>;

/** What the API adds to a caller's request: the event's id, when it arrived, and whose key sent it. */
export interface Envelope {
  id: string;
  receivedAt: string;
  apiKeyId: string | null;
}

/**
 * The request message (`v: 2`): the caller's request as it arrived (its JSON text) in an envelope.
 * `POST /log` enqueues a body that {@link readLogRequestFast} vouched for this
 * way: serializing again the object just parsed from that text was the largest
 * single cost of the ingest path. The worker reads it back with the same
 * function and {@link queuedEventOf}, so both versions store the same event.
 */
export const requestMessageSchema = z.object({
  v: z.literal(2),
  id: eventMessageSchema.shape.id,
  receivedAt: eventMessageSchema.shape.receivedAt,
  apiKeyId: eventMessageSchema.shape.apiKeyId,
  request: logRequestSchema.extend({
    // As APIs of earlier versions accepted requests (session ids trimmed, any ISO 8601 time): what they
    // queued keeps meaning what they answered 202 to. Newer APIs refuse such requests at the door.
    session_id: z.union([sessionIdNumberSchema, z.string().trim().pipe(sessionIdTextSchema)]),
    timestamp: z.iso.datetime({ offset: true }).optional(),
  }),
});

/** The queued event of a valid request; every front door and the worker's reading of a request message build it here. */
export function queuedEventOf(request: LogRequest, envelope: Envelope): QueuedEvent {
  return {
    v: 1,
    id: envelope.id,
    eventType: request.event_type,
    sessionId: String(request.session_id),
    payload: request.payload,
    clientTime: request.timestamp === undefined ? null : new Date(request.timestamp).toISOString(),
    receivedAt: envelope.receivedAt,
    apiKeyId: envelope.apiKeyId,
  };
}

/**
 * A request message's text. `requestText` must be the JSON text the request was parsed from
 * (one JSON value, so it embeds as it is); the envelope's values are a UUID, an
 * ISO time and a key id, and only the key id needs escaping.
 */
export function requestMessageText(envelope: Envelope, requestText: string): string {
  const apiKeyId = envelope.apiKeyId === null ? 'null' : JSON.stringify(envelope.apiKeyId);
  return `{"v":2,"id":"${envelope.id}","receivedAt":"${envelope.receivedAt}","apiKeyId":${apiKeyId},"request":${requestText}}`;
}

// zod's own patterns, so the fast path below accepts exactly what the schema's checks accept.
const UUID_PATTERN = z.regexes.uuid();
const DATETIME_PATTERN = z.regexes.datetime({ offset: true });

/**
 * The common case of {@link eventMessageSchema} (what this service's API
 * enqueues) without zod's copy of every field: the worker reads each queued
 * event once, and zod's parse was a tenth of its CPU. Returns what the schema
 * would return, or `undefined` for anything it does not vouch for, which the
 * caller then parses with the schema (the only source of error messages).
 */
export function readQueuedEventFast(json: unknown): QueuedEvent | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const fields = json as Record<string, unknown>;
  if (fields['v'] === 2) return readQueuedRequestFast(fields);
  if (fields['v'] !== 1) return undefined;
  const envelope = readEnvelopeFast(fields);
  if (envelope === undefined) return undefined;
  const { eventType, sessionId, payload, clientTime } = fields;
  if (typeof eventType !== 'string' || eventType.length === 0 || eventType.length > 64) return undefined;
  if (typeof sessionId !== 'string' || sessionId.length === 0 || sessionId.length > MAX_SESSION_ID_LENGTH)
    return undefined;
  if (
    typeof payload !== 'object' ||
    payload === null ||
    Object.getPrototypeOf(payload) !== Object.prototype ||
    // zod's copy of a record drops this key; leave such payloads to it.
    Object.hasOwn(payload, '__proto__')
  ) {
    return undefined;
  }
  if (clientTime !== null && (typeof clientTime !== 'string' || !DATETIME_PATTERN.test(clientTime)))
    return undefined;
  return {
    v: 1,
    id: envelope.id,
    eventType,
    sessionId,
    payload: payload as Record<string, unknown>,
    clientTime,
    receivedAt: envelope.receivedAt,
    apiKeyId: envelope.apiKeyId,
  };
}

/** The envelope's fields of either version, as the schemas check them, or `undefined`. */
function readEnvelopeFast(fields: Record<string, unknown>): Envelope | undefined {
  const { id, receivedAt, apiKeyId } = fields;
  if (typeof id !== 'string' || !UUID_PATTERN.test(id)) return undefined;
  if (typeof receivedAt !== 'string' || !DATETIME_PATTERN.test(receivedAt)) return undefined;
  if (apiKeyId !== null && (typeof apiKeyId !== 'string' || apiKeyId.length > 64)) return undefined;
  return { id, receivedAt, apiKeyId };
}

/**
 * A queued message (either version) as the event to store, or what is wrong with
 * it: the fast path when it vouches, the schemas otherwise.
 */
export function readQueuedMessage(
  json: unknown,
): { ok: true; event: QueuedEvent } | { ok: false; problems: string } {
  const fast = readQueuedEventFast(json);
  if (fast !== undefined) return { ok: true, event: fast };
  const describe = (error: z.ZodError) =>
    error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ');
  if (typeof json === 'object' && json !== null && (json as { v?: unknown }).v === 2) {
    const parsed = requestMessageSchema.safeParse(json);
    return parsed.success
      ? { ok: true, event: queuedEventOf(parsed.data.request, parsed.data) }
      : { ok: false, problems: describe(parsed.error) };
  }
  const parsed = eventMessageSchema.safeParse(json);
  return parsed.success ? { ok: true, event: parsed.data } : { ok: false, problems: describe(parsed.error) };
}

/** A request message's common case, read as {@link requestMessageSchema} would, or `undefined`. */
function readQueuedRequestFast(fields: Record<string, unknown>): QueuedEvent | undefined {
  const envelope = readEnvelopeFast(fields);
  if (envelope === undefined) return undefined;
  const request = readLogRequestFast(fields['request']);
  return request === undefined ? undefined : queuedEventOf(request, envelope);
}

/** What a queue reports of itself (metrics and readiness read it). */
export interface QueueStats {
  /** Entries not yet acknowledged: waiting plus in flight. */
  depth: number;
  deadLetters: number;
  /** Age of the oldest entry not yet acknowledged, or null when there is none. */
  oldestAgeMs: number | null;
}
