import { badRequest, eventIdConflict, type FieldProblem } from '../errors.js';
import type { EventQueue } from '../queue/event-queue.js';
import type { Principal } from '../security/authenticate.js';
import { payloadFieldsValid, payloadSchemas } from '../events/catalog.js';
import { createIsoClock } from './clock.js';
import { uuidv7 } from './uuid7.js';
import { storabilityProblems } from '../events/storability.js';
import { createOwnIdCheck, type OwnIdCheck, type OwnIdDeps } from './own-ids.js';
import { logRequestSchema, readLogRequestFast } from '../events/log-request.js';
import { queuedEventOf, requestMessageText, type QueuedEvent } from '../events/queue-message.js';
import { toFieldProblems } from '../validation.js';

export interface AcceptedEvent {
  id: string;
}

/** `storedEvents` and `idClaims`: without them, only the worker sees an id reused, and sets the event aside. */
export interface IngestServiceDeps extends OwnIdDeps {
  queue: EventQueue;
  /** The spec's LOGGING_ENABLED: when false, events are validated and acknowledged but not kept. */
  loggingEnabled: boolean;
  /** The current time as ISO 8601 text. */
  nowIso?: () => string;
  /** Called for each event once the queue holds it (metrics). */
  onAccepted?: (event: QueuedEvent) => void;
}

const ID_REUSED = 'already holds a different event (ids are global: send a new event_id for a new event)';

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
  storedEvents,
  idClaims,
}: IngestServiceDeps) {
  const checkIds = createOwnIdCheck({ storedEvents, idClaims });
  const noCheck: OwnIdCheck = { verdicts: new Map(), release: async () => undefined };
  /** The events naming their own id, checked; nothing to check when events are not kept. */
  const checkOwnIds = (events: readonly QueuedEvent[]) =>
    loggingEnabled && events.length > 0 ? checkIds(events) : Promise.resolve(noCheck);
  /** Queues `events`; if the queue refuses them, the ids they claimed are given back. */
  const enqueueChecked = async (
    check: OwnIdCheck,
    events: readonly QueuedEvent[],
    texts?: readonly string[],
  ) => {
    try {
      await enqueue(events, texts);
    } catch (error) {
      await check.release();
      throw error;
    }
  };

  /** `texts` are the events' queued forms when the caller has them, else each is serialized. */
  const enqueue = async (events: readonly QueuedEvent[], texts?: readonly string[]) => {
    if (!loggingEnabled || events.length === 0) return;
    await queue.enqueue(texts ?? events.map((event) => JSON.stringify(event)));
    if (onAccepted) for (const event of events) onAccepted(event);
  };

  type Prepared =
    | { ok: true; event: QueuedEvent; vouchedFast: boolean; ownId: boolean }
    | { ok: false; problems: FieldProblem[] };

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
    return {
      ok: true,
      event: queuedEventOf(request, envelope),
      vouchedFast: !fromSchema,
      ownId: request.event_id !== undefined,
    };
  }

  return {
    /**
     * Validates one event body and enqueues it.
     * @param bodyText the JSON text `body` was parsed from, when the caller has
     * it: queued as it is (a request message, see requestMessageText) instead of serialized again.
     * @throws AppError BAD_REQUEST naming every bad field; QUEUE_FULL or
     * SERVICE_UNAVAILABLE (with a retry delay) when the queue cannot take it.
     */
    async accept(body: unknown, principal: Principal, bodyText?: string): Promise<AcceptedEvent> {
      const prepared = prepare(body, principal, nowIso());
      if (!prepared.ok) throw invalidEvent(prepared.problems);
      const { event } = prepared;
      const check = await checkOwnIds(prepared.ownId ? [event] : []);
      const verdict = check.verdicts.get(event.id.toLowerCase());
      if (verdict === 'conflict')
        throw eventIdConflict([event.id], [{ field: 'event_id', message: ID_REUSED }]);
      if (verdict === 'stored') return { id: event.id };
      // Only a body the fast path read as it is: the schema's copy may differ from the text.
      const texts =
        bodyText !== undefined && prepared.vouchedFast ? [requestMessageText(event, bodyText)] : undefined;
      await enqueueChecked(check, [event], texts);
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
      const firstWithId = new Map<string, number>();
      prepared.forEach((item, index) => {
        if (!item.ok) return;
        const id = item.event.id.toLowerCase();
        const first = firstWithId.get(id);
        if (first === undefined) firstWithId.set(id, index);
        else
          prepared[index] = {
            ok: false,
            problems: [{ field: 'event_id', message: `repeats the event_id of item ${first}` }],
          };
      });
      const check = await checkOwnIds(
        prepared.flatMap((item) => (item.ok && item.ownId ? [item.event] : [])),
      );
      const results = prepared.map((item) => {
        if (!item.ok) return item;
        const verdict = check.verdicts.get(item.event.id.toLowerCase());
        if (verdict === 'conflict')
          return { ok: false as const, problems: [{ field: 'event_id', message: ID_REUSED }] };
        return { ok: true as const, id: item.event.id, queue: verdict === undefined, event: item.event };
      });
      await enqueueChecked(
        check,
        results.flatMap((item) => (item.ok && item.queue ? [item.event] : [])),
      );
      return results.map((item) => (item.ok ? { ok: true, id: item.id } : item));
    },

    /**
     * Validates a batch; enqueues all of it or none of it, so a caller never has
     * to guess which half of a batch landed.
     */
    async acceptMany(bodies: readonly unknown[], principal: Principal): Promise<AcceptedEvent[]> {
      const receivedAt = nowIso();
      const problems: FieldProblem[] = [];
      const events: QueuedEvent[] = [];
      const ownIds: QueuedEvent[] = [];
      const firstWithId = new Map<string, number>();
      bodies.forEach((body, index) => {
        const prepared = prepare(body, principal, receivedAt);
        if (!prepared.ok) {
          for (const problem of prepared.problems)
            problems.push({ ...problem, field: `[${index}].${problem.field}` });
          return;
        }
        const id = prepared.event.id.toLowerCase();
        const first = firstWithId.get(id);
        if (first !== undefined) {
          problems.push({ field: `[${index}].event_id`, message: `repeats the event_id of [${first}]` });
          return;
        }
        firstWithId.set(id, index);
        events.push(prepared.event);
        if (prepared.ownId) ownIds.push(prepared.event);
      });
      if (problems.length > 0) throw badRequest('Invalid events', problems);
      const check = await checkOwnIds(ownIds);
      const conflicts = events.flatMap((event, index) =>
        check.verdicts.get(event.id.toLowerCase()) === 'conflict' ? [{ event, index }] : [],
      );
      if (conflicts.length > 0) {
        await check.release();
        throw eventIdConflict(
          conflicts.map(({ event }) => event.id),
          conflicts.map(({ index }) => ({ field: `[${index}].event_id`, message: ID_REUSED })),
        );
      }
      // Events stored already (a retried batch) are accepted again without being queued twice.
      await enqueueChecked(
        check,
        events.filter((event) => !check.verdicts.has(event.id.toLowerCase())),
      );
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
