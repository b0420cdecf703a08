import { z } from 'zod';
import type { DeadLetterService } from '../ingest/dead-letters.js';
import { parseBody, parseQuery } from './query-params.js';
import type { Route } from './server.js';

const listQuerySchema = z.strictObject({
  limit: z.coerce.number({ error: 'must be a number' }).default(50),
});

const replayBodySchema = z.strictObject({
  ids: z.array(z.string({ error: 'must be a dead letter id (text)' }).max(64, 'is too long for an id'), {
    error: 'must be an array of dead letter ids',
  }),
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
        return {
          status: 200,
          body: {
            dead_letters: letters.map((letter) => ({
              id: letter.id,
              original_id: letter.originalId,
              failed_at: letter.failedAt,
              reason: letter.reason,
              body: letter.body,
            })),
            count: letters.length,
            total,
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/dead-letters/replay',
      scope: 'admin',
      async handle(context) {
        const { ids } = parseBody(replayBodySchema, await context.readJson());
        return { status: 200, body: await deadLetters.replay(ids) };
      },
    },
  ];
}
