import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { connectLive, type LiveConnection } from '../support/live-client.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

interface Answer {
  status: number;
  errors?: Array<{ message: string; extensions?: { code?: string; limit?: string } }>;
}

/** The first thing the server says about one subscription: its errors, data, or that it completed. */
function firstAnswer(client: Client, query: string): Promise<{ errors?: unknown; data?: unknown }> {
  return new Promise((resolve) => {
    const stop = client.subscribe(
      { query },
      {
        next: (result) => {
          stop();
          resolve(result);
        },
        error: (error) => resolve({ errors: error }),
        complete: () => resolve({}),
      },
    );
  });
}

/** Nested past what graphql's recursive parser survives (it throws RangeError near 3,000 levels). */
const DEEP = `{ ${'a{'.repeat(5000)}b${'}'.repeat(5000)} }`;
const REPEATED = `{ ${Array.from({ length: 450 }, () => 'events { nodes { id payload eventType } }').join('\n')} }`;

describe.skipIf(!(postgresAvailable && redisAvailable))(
  'refused GraphQL documents count against the key’s request limit',
  () => {
    let app: TestApp;
    const live: LiveConnection[] = [];
    beforeAll(async () => {
      app = await startTestApp('postgres+redis', { role: 'serve' });
    });
    afterAll(async () => {
      for (const connection of live) await connection.dispose();
      await app?.stop();
    });

    const keyLimitedTo = async (rateLimitPerMinute: number) =>
      (
        await createApiKeyService({ store: app.running.backends.apiKeys }).create({
          name: `refused-${rateLimitPerMinute}`,
          scopes: ['read'],
          rateLimitPerMinute,
        })
      ).secret;

    const graphql = async (secret: string, query: string): Promise<Answer> => {
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'x-api-key': secret, 'content-type': 'application/json' },
        body: JSON.stringify({ query }),
      });
      return { status: response.status, ...((await response.json()) as Omit<Answer, 'status'>) };
    };

    it('over HTTP: over a shape limit, invalid, unparsable, too long or too deep, each is one request; the next is 429', async () => {
      const secret = await keyLimitedTo(6);
      const refused = [
        await graphql(secret, REPEATED),
        await graphql(secret, '{ nope }'),
        await graphql(secret, '{ events {'),
        await graphql(
          secret,
          `
            {
              __typename
            }
            ${' '.repeat(20_001)}
          `,
        ),
        await graphql(secret, DEEP),
      ];
      expect(refused.map((answer) => [answer.status, answer.errors?.[0]?.extensions?.code])).toEqual([
        [400, 'GRAPHQL_VALIDATION_FAILED'],
        [400, 'GRAPHQL_VALIDATION_FAILED'],
        [400, 'GRAPHQL_PARSE_FAILED'],
        [413, 'QUERY_TOO_LARGE'],
        [400, 'GRAPHQL_VALIDATION_FAILED'],
      ]);
      expect(refused[4]?.errors?.[0]?.extensions?.limit).toBe('maxNesting');
      expect(refused[0]?.errors?.[0]?.extensions?.limit).toBe('maxSelections');

      expect((await graphql(secret, '{ eventTypes { count } }')).status).toBe(200);
      const over = await graphql(secret, '{ eventTypes { count } }');
      expect(over.status).toBe(429);
      expect(over.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
      // Past the limit a hostile document is refused for the limit, before anything reads it.
      expect((await graphql(secret, REPEATED)).status).toBe(429);
    });

    it('over WebSocket: each refused subscribe is one request, then RATE_LIMITED, also over HTTP', async () => {
      const secret = await keyLimitedTo(6);
      const connection = connectLive(app.baseUrl, secret);
      live.push(connection);
      await connection.connected; // connection_init: the first request
      const hostile = `subscription { eventLogged { ${Array.from({ length: 11 }, () => 'cursor').join(' ')} } }`;
      const refused = [
        await firstAnswer(connection.client, hostile),
        await firstAnswer(connection.client, 'subscription { nope }'),
        await firstAnswer(connection.client, `subscription { eventLogged { cursor } }${' '.repeat(20_001)}`),
        // Deeper than graphql's parser can recurse: refused before parsing, the connection stays.
        await firstAnswer(connection.client, `subscription ${DEEP}`),
      ];
      const codes = refused.map(
        (answer) => (answer.errors as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code,
      );
      expect(codes).toEqual([
        'GRAPHQL_VALIDATION_FAILED',
        'GRAPHQL_VALIDATION_FAILED',
        'QUERY_TOO_LARGE',
        'GRAPHQL_VALIDATION_FAILED',
      ]);
      expect((refused[0]?.errors as Array<{ message: string }>)[0]?.message).toMatch(
        /`eventLogged\.cursor` is selected more than 10 times/,
      );

      // The sixth request (a valid subscription) is allowed, the seventh refused.
      const accepted = connection.client.subscribe(
        { query: 'subscription { eventLogged { cursor } }' },
        { next: () => undefined, error: () => undefined, complete: () => undefined },
      );
      const limited = await firstAnswer(connection.client, 'subscription { eventLogged { cursor } }');
      accepted();
      expect((limited.errors as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code).toBe(
        'RATE_LIMITED',
      );
      expect((await graphql(secret, '{ eventTypes { count } }')).status).toBe(429);
    });
  },
);
