import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../src/query/event-queries.js';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { connectLive, postEvent, type LiveConnection } from '../support/live-client.js';
import { openRawSocket, type RawMessage } from './raw-socket.js';

interface GraphQLAnswer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: { code?: string } }>;
}

async function graphql(
  app: TestApp,
  key: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLAnswer> {
  const response = await fetch(`${app.baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': key },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLAnswer;
}

/** A stored key made through the admin mutation, as an operator would. */
async function createStoredKey(app: TestApp, scopes: string[]): Promise<{ id: string; secret: string }> {
  const answer = await graphql(
    app,
    app.keys.admin,
    `
      mutation ($input: CreateApiKeyInput!) {
        createApiKey(input: $input) {
          key {
            id
          }
          secret
        }
      }
    `,
    { input: { name: `ws-${randomUUID()}`, scopes } },
  );
  const created = answer.data?.['createApiKey'] as { key: { id: string }; secret: string } | undefined;
  if (!created) throw new Error(`createApiKey failed: ${JSON.stringify(answer)}`);
  return { id: created.key.id, secret: created.secret };
}

/** Subscribes from the start of the (fresh, empty) session, so no event is missed while registering. */
const FROM_START = encodeCursor('0');

const EVENT_LOGGED =
  'subscription($f: EventFilter, $after: String) { eventLogged(filter: $f, after: $after) { node { id } } }';

const firstErrorOf = (message: RawMessage) =>
  (message.payload as Array<{ message: string; extensions?: { code?: string } }>)[0];

/** GET /events on one keep-alive socket: the status, and whether the socket was reused. */
function getEvents(
  app: TestApp,
  agent: http.Agent,
  key: string,
): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      `${app.baseUrl}/events?limit=1`,
      { agent, headers: { 'x-api-key': key } },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, reused: request.reusedSocket }));
      },
    );
    request.on('error', reject);
  });
}

/**
 * Long-lived connections stay as authorized as single requests, and GraphQL
 * over WebSocket answers like GraphQL over HTTP; on the embedded backends and
 * on PostgreSQL + Redis.
 */
export function wsHardeningContract(backend: Backend, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`live-feed hardening on ${backend}`, () => {
    // Cached for ten minutes: only this process's own revocation (forget) can act within a test.
    let longCache: TestApp;
    // Cached for 300 ms: a revocation the process is not told of lands within that.
    let shortCache: TestApp;
    let production: TestApp;
    const disposers: Array<() => unknown> = [];
    const live = (app: TestApp, key: string) => {
      const connection = connectLive(app.baseUrl, key);
      disposers.push(() => connection.dispose());
      return connection;
    };
    const raw = async (app: TestApp, key: string) => {
      const connection = await openRawSocket(app.baseUrl, key);
      disposers.push(() => connection.dispose());
      return connection;
    };
    /** An open subscription with one event through it, so it is known to work. */
    const workingSubscription = async (app: TestApp, connection: LiveConnection) => {
      const session = `ws-${randomUUID()}`;
      const subscription = connection.subscribe({ filter: { sessionId: session }, after: FROM_START });
      await postEvent(app.baseUrl, app.keys.admin, { session_id: session, event_type: 'review_started' });
      await subscription.waitFor(1);
      return { session, subscription };
    };

    beforeAll(async () => {
      const env = { RATE_LIMIT_PER_MINUTE: '100000' };
      [longCache, shortCache, production] = await Promise.all([
        startTestApp(backend, { env: { ...env, KEY_CACHE_TTL_MS: '600000' } }),
        startTestApp(backend, { env: { ...env, KEY_CACHE_TTL_MS: '300' } }),
        startTestApp(backend, { env: { ...env, NODE_ENV: 'production' } }),
      ]);
    });
    afterAll(async () => {
      for (const dispose of disposers) await dispose();
      await Promise.all([longCache?.stop(), shortCache?.stop(), production?.stop()]);
    });

    it('closes a live connection with 4401 at once when this process revokes its stored key, though its cache would trust it for minutes', async () => {
      const key = await createStoredKey(longCache, ['read']);
      const connection = live(longCache, key.secret);
      await workingSubscription(longCache, connection);
      const revoked = await graphql(
        longCache,
        longCache.keys.admin,
        'mutation($id: ID!) { revokeApiKey(id: $id) { id } }',
        {
          id: key.id,
        },
      );
      expect(revoked.errors).toBeUndefined();
      const closed = await connection.closed;
      expect(closed.code).toBe(4401);
      expect(closed.reason).toContain('revoked');
    });

    it('closes it with 4401 within the cache TTL when another process revoked the key, and keeps connections of other keys', async () => {
      const key = await createStoredKey(shortCache, ['read']);
      const doomed = live(shortCache, key.secret);
      const kept = live(shortCache, shortCache.keys.readOnly);
      await workingSubscription(shortCache, doomed);
      const { session, subscription } = await workingSubscription(shortCache, kept);

      // Revoked in the database only, as another API process does: this one is not told.
      expect(await shortCache.running.backends.apiKeys.revoke(key.id)).toMatchObject({ id: key.id });
      expect(await doomed.closed).toMatchObject({ code: 4401 });

      await postEvent(shortCache.baseUrl, shortCache.keys.admin, {
        session_id: session,
        event_type: 'review_completed',
      });
      expect(await subscription.waitFor(2)).toHaveLength(2);
      expect(subscription.errors).toEqual([]);
    });

    it("closes it with 4403 when the key loses the 'read' scope", async () => {
      const key = await createStoredKey(shortCache, ['read', 'ingest']);
      const connection = live(shortCache, key.secret);
      await workingSubscription(shortCache, connection);
      // There is no operation that changes a key's scopes: an operator's UPDATE stands in for one.
      await shortCache.running.backends.db.query(
        `UPDATE api_keys SET scopes = ARRAY['ingest'] WHERE id = $1`,
        [key.id],
      );
      const closed = await connection.closed;
      expect(closed.code).toBe(4403);
      expect(closed.reason).toContain("'read'");
    });

    it('answers every request on a keep-alive HTTP connection with its key as it is now: 401 once revoked', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const app of [shortCache, longCache]) {
          const key = await createStoredKey(app, ['read']);
          expect(await getEvents(app, agent, key.secret)).toMatchObject({ status: 200 });
          if (app === longCache) {
            await graphql(app, app.keys.admin, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', {
              id: key.id,
            });
            // This process revoked it: the very next request on the same socket is refused.
            expect(await getEvents(app, agent, key.secret)).toEqual({ status: 401, reused: true });
          } else {
            await app.running.backends.apiKeys.revoke(key.id);
            const refused = await eventually(async () => {
              const answer = await getEvents(app, agent, key.secret);
              expect(answer.reused).toBe(true);
              return answer.status === 200 ? undefined : answer;
            });
            expect(refused.status).toBe(401);
          }
        }
      } finally {
        agent.destroy();
      }
    });

    it('answers parse, validation, operation and variable errors as errors of that operation, with Apollo codes, and keeps the other subscription', async () => {
      const socket = await raw(longCache, longCache.keys.admin);
      const session = `ws-errors-${randomUUID()}`;
      socket.send({
        id: 'good',
        type: 'subscribe',
        payload: { query: EVENT_LOGGED, variables: { f: { sessionId: session }, after: FROM_START } },
      });
      const bad: Array<[string, Record<string, unknown>, string]> = [
        ['parse', { query: 'subscription { eventLogged {' }, 'GRAPHQL_PARSE_FAILED'],
        ['unknown-field', { query: 'subscription { eventLogged { nope } }' }, 'GRAPHQL_VALIDATION_FAILED'],
        [
          'too-many-aliases',
          { query: `{ ${Array.from({ length: 31 }, (_, n) => `a${n}: __typename`).join(' ')} }` },
          'GRAPHQL_VALIDATION_FAILED',
        ],
        [
          'operation',
          { query: 'query A { __typename } query B { __typename }', operationName: 'C' },
          'OPERATION_RESOLUTION_FAILURE',
        ],
        [
          'variables',
          { query: EVENT_LOGGED, variables: { f: { sessionId: { not: 'an id' } } } },
          'BAD_USER_INPUT',
        ],
        ['too-large', { query: `{ __typename }${' '.repeat(20_001)}` }, 'QUERY_TOO_LARGE'],
      ];
      for (const [id, payload] of bad) socket.send({ id, type: 'subscribe', payload });
      for (const [id, , code] of bad) {
        const outcome = await socket.outcome(id);
        expect(outcome.close).toBeUndefined();
        expect(outcome.messages.map((message) => message.type)).toEqual(['error']);
        expect(firstErrorOf(outcome.messages[0]!)?.extensions?.code, id).toBe(code);
      }

      // Queries and mutations run over the socket too; the mutation's event reaches the subscription.
      socket.send({ id: 'query', type: 'subscribe', payload: { query: '{ __typename }' } });
      expect((await socket.outcome('query')).messages).toEqual([
        { id: 'query', type: 'next', payload: { data: { __typename: 'Query' } } },
        { id: 'query', type: 'complete' },
      ]);
      socket.send({
        id: 'mutation',
        type: 'subscribe',
        payload: {
          query: 'mutation($i: LogEventInput!) { logEvent(input: $i) { eventId } }',
          variables: { i: { sessionId: session, eventType: 'review_started' } },
        },
      });
      // Variables whose text parsing would change are that operation's error, as over HTTP.
      socket.send(
        `{"id":"inexact","type":"subscribe","payload":{"query":"mutation($i: LogEventInput!) { logEvent(input: $i) { eventId } }","variables":{"i":{"sessionId":"${session}","eventType":"review_started","payload":{"n":12345678901234567890}}}}}`,
      );
      const inexact = await socket.outcome('inexact');
      expect(inexact.close).toBeUndefined();
      expect(firstErrorOf(inexact.messages[0]!)?.extensions?.code).toBe('BAD_USER_INPUT');
      const [logged] = (await socket.outcome('mutation')).messages;
      const eventId = (logged?.payload as { data: { logEvent: { eventId: string } } }).data.logEvent.eventId;
      const delivered = await socket.next(
        (message) => message.id === 'good' && message.type === 'next',
        'the event',
      );
      expect(delivered.payload).toEqual({ data: { eventLogged: { node: { id: eventId } } } });
      expect(socket.socket.readyState).toBe(socket.socket.OPEN);
    });

    it('refuses introspection over WebSocket and HTTP in production, and answers it otherwise', async () => {
      const introspection = '{ __schema { queryType { name } } }';
      const refusedOverWs = await (async () => {
        const socket = await raw(production, production.keys.readOnly);
        socket.send({ id: 'i', type: 'subscribe', payload: { query: introspection } });
        return (await socket.outcome('i')).messages;
      })();
      expect(refusedOverWs.map((message) => message.type)).toEqual(['error']);
      expect(firstErrorOf(refusedOverWs[0]!)).toMatchObject({
        message: expect.stringContaining('introspection'),
        extensions: { code: 'GRAPHQL_VALIDATION_FAILED' },
      });
      const overHttp = await graphql(production, production.keys.readOnly, introspection);
      expect(overHttp.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(overHttp.data).toBeUndefined();

      const socket = await raw(longCache, longCache.keys.readOnly);
      socket.send({ id: 'i', type: 'subscribe', payload: { query: introspection } });
      expect((await socket.outcome('i')).messages[0]).toEqual({
        id: 'i',
        type: 'next',
        payload: { data: { __schema: { queryType: { name: 'Query' } } } },
      });
    });

    it('leaves "Did you mean" hints out of validation and variable errors in production, over HTTP and WebSocket', async () => {
      const cases: Array<{ query: string; variables?: Record<string, unknown>; code: string }> = [
        { query: '{ evnts { nodes { id } } }', code: 'GRAPHQL_VALIDATION_FAILED' },
        {
          query: 'query($f: EventFilter) { events(filter: $f) { nodes { id } } }',
          variables: { f: { sesionId: 'x' } },
          code: 'BAD_USER_INPUT',
        },
      ];
      const messagesOf = async (app: TestApp) => {
        const socket = await raw(app, app.keys.readOnly);
        const found: Array<{ transport: string; message: string; code: string | undefined }> = [];
        for (const [index, { query, variables }] of cases.entries()) {
          const overHttp = (await graphql(app, app.keys.readOnly, query, variables)).errors?.[0];
          found.push({
            transport: 'http',
            message: overHttp?.message ?? '',
            code: overHttp?.extensions?.code,
          });
          socket.send({ id: String(index), type: 'subscribe', payload: { query, variables } });
          const [answer] = (await socket.outcome(String(index))).messages;
          const overWs = answer?.type === 'error' ? firstErrorOf(answer) : undefined;
          found.push({ transport: 'ws', message: overWs?.message ?? '', code: overWs?.extensions?.code });
        }
        return found;
      };
      const expectedCodes = cases.flatMap(({ code }) => [code, code]);

      const hidden = await messagesOf(production);
      expect(hidden.map(({ code }) => code)).toEqual(expectedCodes);
      for (const { transport, message } of hidden) {
        expect(message, transport).not.toBe('');
        expect(message, transport).not.toContain('Did you mean');
      }
      // The same requests outside production do get the hints: the check above can fail.
      const shown = await messagesOf(longCache);
      expect(shown.map(({ code }) => code)).toEqual(expectedCodes);
      for (const { transport, message } of shown) expect(message, transport).toContain('Did you mean');
    });
  });
}
