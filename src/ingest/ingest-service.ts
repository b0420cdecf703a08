import { badRequest, type FieldProblem } from '../errors.js';
import type { EventQueue } from '../queue/event-queue.js';
import type { Principal } from '../security/authenticate.js';
import { payloadFieldsValid, payloadSchemas } from './catalog.js';
import { createIsoClock } from './clock.js';
import { uuidv7 } from './uuid7.js';
import {
  logRequestSchema,
  queuedEventOf,
  queuedRequestText,
  readLogRequestFast,
  storabilityProblems,
  toFieldProblems,
  type QueuedEvent,
} from './event.js';

export interface AcceptedEvent {
  id: string;
}

export interface IngestServiceDeps {
  queue: EventQueue;
  /** The spec's LOGGING_ENABLED: when false, events are validated and acknowledged but not kept. */
  loggingEnabled: boolean;
  /** The current time as ISO 8601 text. */
  nowIso?: () => string;
  /** Called for each event once the queue holds it (metrics). */
  onAccepted?: (event: QueuedEvent) => void;
}

/**
 * The one ingest path behind every front door (REST `POST /log`, GraphQL
 * `logEvent`). It validates, assigns the id, and answers once the queue holds
 * the event; persistence happens later in the worker.
 */
export function createIngestService({
  queue,
  loggingEnabled,
  nowIso = createIsoClock(),
  onAccepted,
}: IngestServiceDeps) {
  /** `texts` are the events' queued forms when the caller has them, else each is serialized. */
  const enqueue = async (events: readonly QueuedEvent[], texts?: readonly string[]) => {
    if (!loggingEnabled || events.length === 0) return;
    await queue.enqueue(texts ?? events.map((event) => JSON.stringify(event)));
    if (onAccepted) for (const event of events) onAccepted(event);
  };

  type Prepared =
    { ok: true; event: QueuedEvent; vouchedFast: boolean } | { ok: false; problems: FieldProblem[] };

  function prepare(body: unknown, principal: Principal, receivedAt: string): Prepared {
    // Most events take the fast path; anything it does not vouch for goes through
    // the schemas, which produce every error message.
    let request = readLogRequestFast(body);
    if (request !== undefined && !payloadFieldsValid(request.event_type, request.payload))
      request = undefined;
    const fromSchema = request === undefined;
    if (request === undefined) {
      const parsed = logRequestSchema.safeParse(body);
      if (!parsed.success)
        return { ok: false, problems: toFieldProblems(parsed.error, 'put custom data in payload') };
      request = parsed.data;
    }
    const problems = storabilityProblems(request.session_id, 'session_id');
    // The payload as sent: the schema's copy has lost any own `__proto__` key, which must be refused.
    problems.push(...storabilityProblems(fromSchema ? payloadAsSent(body) : request.payload, 'payload'));
    if (fromSchema) {
      const payloadCheck = payloadSchemas[request.event_type].safeParse(request.payload);
      if (!payloadCheck.success) {
        for (const problem of toFieldProblems(payloadCheck.error))
          problems.push({ ...problem, field: `payload.${problem.field}` });
      }
    }
    if (problems.length > 0) return { ok: false, problems };
    const envelope = { id: request.event_id ?? uuidv7(), receivedAt, apiKeyId: principal.keyId };
    return { ok: true, event: queuedEventOf(request, envelope), vouchedFast: !fromSchema };
  }

  return {
    /**
     * Validates one event body and enqueues it.
     * @param bodyText the JSON text `body` was parsed from, when the caller has
     * it: queued as it is (form 2, see queuedRequestText) instead of serialized again.
     * @throws AppError BAD_REQUEST naming every bad field; QUEUE_FULL or
     * SERVICE_UNAVAILABLE (with a retry delay) when the queue cannot take it.
     */
    async accept(body: unknown, principal: Principal, bodyText?: string): Promise<AcceptedEvent> {
      const prepared = prepare(body, principal, nowIso());
      if (!prepared.ok) throw invalidEvent(prepared.problems);
      const { event } = prepared;
      // Only a body the fast path read as it is: the schema's copy may differ from the text.
      const texts =
        bodyText !== undefined && prepared.vouchedFast ? [queuedRequestText(event, bodyText)] : undefined;
      await enqueue([event], texts);
      return { id: event.id };
    },

    /**
     * Validates each event on its own and enqueues the valid ones together: a
     * result per item, for callers that prefer partial success (GraphQL
     * `logEvents`). If the queue refuses, nothing is accepted.
     */
    async acceptEach(
      bodies: readonly unknown[],
      principal: Principal,
    ): Promise<Array<{ ok: true; id: string } | { ok: false; problems: FieldProblem[] }>> {
      const receivedAt = nowIso();
      const prepared = bodies.map((body) => prepare(body, principal, receivedAt));
      const events = prepared.flatMap((item) => (item.ok ? [item.event] : []));
      await enqueue(events);
      return prepared.map((item) => (item.ok ? { ok: true, id: item.event.id } : item));
    },

    /**
     * Validates a batch; enqueues all of it or none of it, so a caller never has
     * to guess which half of a batch landed.
     */
    async acceptMany(bodies: readonly unknown[], principal: Principal): Promise<AcceptedEvent[]> {
      const receivedAt = nowIso();
      const problems: FieldProblem[] = [];
      const events: QueuedEvent[] = [];
      bodies.forEach((body, index) => {
        const prepared = prepare(body, principal, receivedAt);
        if (prepared.ok) events.push(prepared.event);
        else
          for (const problem of prepared.problems)
            problems.push({ ...problem, field: `[${index}].${problem.field}` });
      });
      if (problems.length > 0) throw badRequest('Invalid events', problems);
      await enqueue(events);
      return events.map((event) => ({ id: event.id }));
    },
  };
}

export type IngestService = ReturnType<typeof createIngestService>;

/** The body's own payload (an object, since the schema accepted the body), or an absent payload's default. */
function payloadAsSent(body: unknown): unknown {
  return (body as { payload?: unknown }).payload ?? {};
}

function invalidEvent(problems: FieldProblem[]) {
  const summary = problems.map((problem) => `${problem.field} ${problem.message}`).join('; ');
  return badRequest(`Invalid event: ${summary}`, problems);
}
