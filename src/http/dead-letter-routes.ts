import { z } from 'zod';
import type { DeadLetterService } from '../ingest/dead-letters.js';
import { wholeNumberBetween } from '../validation.js';
import {
  errorResponse,
  jsonRequestBody,
  jsonResponse,
  keyedErrors,
  parametersOf,
  secured,
} from './openapi-parts.js';
import { parseBody, parseQuery } from './query-params.js';
import type { Route } from './server.js';

/** The most dead letters one call lists or replays (the service holds the same bound). */
const MAX_PER_CALL = 1000;
const HOLD_IDS = `must hold 1 to ${MAX_PER_CALL} ids`;

const listQuerySchema = z.strictObject({ limit: wholeNumberBetween(1, MAX_PER_CALL).default(50) });

const replayBodySchema = z.strictObject({
  ids: z
    .array(z.string({ error: 'must be a dead letter id (text)' }).max(64, 'is too long for an id'), {
      error: 'must be an array of dead letter ids',
    })
    .min(1, HOLD_IDS)
    .max(MAX_PER_CALL, HOLD_IDS),
});

const listSchema = z.object({
  dead_letters: z.array(
    z.object({
      id: z.string().describe('The dead letter, a stream entry id `<ms>-<n>`.'),
      original_id: z.string().describe('The queue entry it was.'),
      failed_at: z.iso.datetime(),
      reason: z.string(),
      body: z.string().describe('The queued entry as it was.'),
    }),
  ),
  count: z.number().int(),
  total: z.number().int().describe('All dead letters held, listed or not.'),
});

const replaySchema = z.object({
  replayed: z.array(z.string()).describe('The ids put back, in the order given.'),
  missing: z.array(z.string()).describe('The ids that are not dead letters.'),
});

/**
 * The dead letters over REST (admin scope), for an operator:
 * - `GET /dead-letters?limit=`: the newest first, with the queued entry as it was;
 * - `POST /dead-letters/replay` `{"ids": [...]}`: back into the queue once the cause is fixed.
 * @throws AppError BAD_REQUEST naming the parameter or field, QUEUE_FULL when a replay does not fit.
 */
export function createDeadLetterRoutes(deadLetters: DeadLetterService): Route[] {
  return [
    {
      method: 'GET',
      path: '/dead-letters',
      scope: 'admin',
      async handle({ url }) {
        const { limit } = parseQuery(listQuerySchema, url.searchParams);
        const { letters, total } = await deadLetters.list(limit);
        const body: z.infer<typeof listSchema> = {
          dead_letters: letters.map((letter) => ({
            id: letter.id,
            original_id: letter.originalId,
            failed_at: letter.failedAt,
            reason: letter.reason,
            body: letter.body,
          })),
          count: letters.length,
          total,
        };
        return { status: 200, body };
      },
    },
    {
      method: 'POST',
      path: '/dead-letters/replay',
      scope: 'admin',
      async handle(context) {
        const { ids } = parseBody(replayBodySchema, await context.readJson());
        const body: z.infer<typeof replaySchema> = await deadLetters.replay(ids);
        return { status: 200, body };
      },
    },
  ];
}

/** The OpenAPI paths of {@link createDeadLetterRoutes}, assembled by src/http/openapi.ts. */
export const deadLetterOpenApiPaths = {
  '/dead-letters': {
    get: {
      operationId: 'listDeadLetters',
      summary:
        'Events a worker could never store, newest first: each with its id, original_id, failed_at, reason and the queued entry as it was (body)',
      ...secured,
      parameters: parametersOf(listQuerySchema),
      responses: {
        '200': jsonResponse('The newest dead letters', listSchema),
        '400': errorResponse('`limit` is malformed or out of range.'),
        ...keyedErrors('admin'),
      },
    },
  },
  '/dead-letters/replay': {
    post: {
      operationId: 'replayDeadLetters',
      summary:
        'Put dead letters back in the queue, in the order given, once their cause is fixed (safe to repeat: storing is idempotent on the event id)',
      ...secured,
      ...jsonRequestBody(replayBodySchema),
      responses: {
        '200': jsonResponse('The ids put back, and those that are not dead letters', replaySchema),
        '400': errorResponse(
          'The body is not `{"ids": [...]}` with 1 to 1000 ids; `fields` names the problem.',
        ),
        ...keyedErrors('admin'),
        '503': errorResponse(
          'The queue cannot take them all (QUEUE_FULL, with Retry-After): none was moved.',
        ),
      },
    },
  },
};
