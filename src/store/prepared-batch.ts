import type { NewEvent } from '../events/stored-event.js';
import { canonicalize } from '../integrity/canonical.js';
import { leafTime, prepareLeafHash } from '../integrity/leaf.js';
import { UnstorableEventError } from '../failure-class.js';

/** An event of a batch with what can be computed before the insert lock is taken. */
export interface BatchCandidate {
  event: NewEvent;
  id: string;
  clientTime: string | null;
  receivedAt: string;
  payloadJson: string;
  leafHash: ReturnType<typeof prepareLeafHash>;
}

/**
 * A batch with the work that needs no database done (canonical payloads,
 * partial leaf hashes), so a worker can do it for its next batch while the
 * current one is being written.
 */
export class PreparedBatch {
  constructor(
    readonly candidates: readonly BatchCandidate[],
    /** The insert's parameters for every candidate, when already encoded. */
    readonly columns?: EncodedColumns,
  ) {}

  /** The parts as one batch, its parameters encoded: the last step a worker does ahead of time. */
  static join(parts: readonly PreparedBatch[]): PreparedBatch {
    const candidates = parts.flatMap((part) => part.candidates);
    return new PreparedBatch(candidates, encodeColumns(candidates));
  }
}

/**
 * The insert's per-event parameters as the text the driver would send: array
 * literals, and the payloads as one JSON array. Encoded ahead, they cost
 * nothing between the insert's round trips, when the database waits on us.
 * Valid for the whole batch, so used only when every candidate is new.
 */
export interface EncodedColumns {
  ids: string;
  eventTypes: string;
  sessionIds: string;
  payloads: string;
  clientTimes: string;
  receivedAts: string;
  apiKeyIds: string;
  /** No id repeats within the batch. */
  distinct: boolean;
}

export function encodeColumns(candidates: readonly BatchCandidate[]): EncodedColumns {
  const ids = candidates.map((candidate) => candidate.id);
  return {
    ids: textArray(ids),
    eventTypes: textArray(candidates.map((candidate) => candidate.event.eventType)),
    sessionIds: textArray(candidates.map((candidate) => candidate.event.sessionId)),
    payloads: `[${candidates.map((candidate) => candidate.payloadJson).join(',')}]`,
    clientTimes: textArray(candidates.map((candidate) => candidate.clientTime)),
    receivedAts: textArray(candidates.map((candidate) => candidate.receivedAt)),
    apiKeyIds: textArray(candidates.map((candidate) => candidate.event.apiKeyId)),
    distinct: new Set(ids).size === ids.length,
  };
}

/** A PostgreSQL array literal, each element quoted and escaped as node-postgres does. */
function textArray(values: ReadonlyArray<string | null>): string {
  let literal = '{';
  for (let index = 0; index < values.length; index += 1) {
    const value = values[index];
    if (index > 0) literal += ',';
    literal += value === null || value === undefined ? 'NULL' : `"${value.replace(/[\\"]/g, '\\$&')}"`;
  }
  return `${literal}}`;
}

/**
 * All that does not need the insert lock, done before taking it: the lock
 * serializes every worker's inserts, so work done while holding it is work no
 * other worker can overlap.
 */
export function prepareBatch(events: readonly NewEvent[]): PreparedBatch {
  return new PreparedBatch(events.map(prepareCandidate));
}

/** @throws UnstorableEventError when the event cannot be encoded (a value canonical JSON refuses). */
function prepareCandidate(event: NewEvent): BatchCandidate {
  try {
    return candidateOf(event);
  } catch (error) {
    throw new UnstorableEventError(event.id, error);
  }
}

function candidateOf(event: NewEvent): BatchCandidate {
  const id = event.id.toLowerCase();
  // Normalized to what timestamptz(3) keeps, so the hash covers exactly what is stored.
  const clientTime = event.clientTime === null ? null : leafTime(event.clientTime);
  const receivedAt = leafTime(event.receivedAt);
  // The leaf hashes the payload's canonical JSON anyway; that text is also what the insert
  // sends (jsonb keeps no key order) and what the live feed announces.
  const payloadJson = canonicalize(event.payload);
  return {
    event,
    id,
    clientTime,
    receivedAt,
    payloadJson,
    leafHash: prepareLeafHash(
      {
        id,
        eventType: event.eventType,
        sessionId: event.sessionId,
        payload: event.payload,
        clientTime,
        receivedAt,
        apiKeyId: event.apiKeyId,
      },
      payloadJson,
    ),
  };
}
