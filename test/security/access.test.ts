import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

interface Operation {
  name: string;
  scope: 'ingest' | 'read' | 'admin';
  call(app: TestApp, key: string | undefined): Promise<{ status: number; code: string | undefined }>;
}

const rest =
  (method: string, path: string, body?: unknown) => async (app: TestApp, key: string | undefined) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key !== undefined) headers['x-api-key'] = key;
    const response = await fetch(`${app.baseUrl}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = (await response.json()) as { error?: { code: string } };
    return { status: response.status, code: answer.error?.code };
  };

const graphql =
  (query: string, variables: Record<string, unknown> = {}) =>
  async (app: TestApp, key: string | undefined) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (key !== undefined) headers['x-api-key'] = key;
    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
    const answer = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
    return { status: response.status, code: answer.errors?.[0]?.extensions?.code };
  };

const event = { session_id: 'access', event_type: 'review_started', payload: {} };
const OPERATIONS: Operation[] = [
  { name: 'POST /log', scope: 'ingest', call: rest('POST', '/log', event) },
  { name: 'GET /events', scope: 'read', call: rest('GET', '/events') },
  { name: 'GET /events/types', scope: 'read', call: rest('GET', '/events/types') },
  { name: 'GET /analytics/usage', scope: 'read', call: rest('GET', '/analytics/usage') },
  { name: 'GET /analytics/llm', scope: 'read', call: rest('GET', '/analytics/llm') },
  { name: 'GET /analytics/performance', scope: 'read', call: rest('GET', '/analytics/performance') },
  { name: 'GET /dead-letters', scope: 'admin', call: rest('GET', '/dead-letters') },
  {
    name: 'POST /dead-letters/replay',
    scope: 'admin',
    call: rest('POST', '/dead-letters/replay', { ids: ['1-1'] }),
  },
  {
    name: 'logEvent',
    scope: 'ingest',
    call: graphql('mutation { logEvent(input: { sessionId: 1, eventType: review_started }) { eventId } }'),
  },
  {
    name: 'logEvents',
    scope: 'ingest',
    call: graphql(
      'mutation { logEvents(inputs: [{ sessionId: 1, eventType: review_started }]) { accepted } }',
    ),
  },
  { name: 'events', scope: 'read', call: graphql('{ events(first: 1) { nodes { id } } }') },
  {
    name: 'event',
    scope: 'read',
    call: graphql('{ event(id: "01a2186f-f7da-76a8-8d93-01a09c71e502") { id } }'),
  },
  { name: 'eventTypes', scope: 'read', call: graphql('{ eventTypes { count } }') },
  { name: 'analytics', scope: 'read', call: graphql('{ analytics(days: 1) { usage { totalEvents } } }') },
  { name: 'apiKeys', scope: 'admin', call: graphql('{ apiKeys { id } }') },
  {
    name: 'createApiKey',
    scope: 'admin',
    call: graphql('mutation { createApiKey(input: { name: "x", scopes: [read] }) { secret } }'),
  },
  { name: 'deadLetters', scope: 'admin', call: graphql('{ deadLetters { total } }') },
  {
    name: 'replayDeadLetters',
    scope: 'admin',
    call: graphql('mutation { replayDeadLetters(ids: ["1-1"]) { missing } }'),
  },
  {
    name: 'revokeApiKey',
    scope: 'admin',
    call: graphql('mutation { revokeApiKey(id: "key_does_not_exist") { id } }'),
  },
];

for (const backend of ['embedded', 'postgres+redis'] as Backend[]) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `access control on ${backend}`,
    () => {
      let app: TestApp;
      const secrets: Record<'ingest' | 'read' | 'admin' | 'revoked', string> = {
        ingest: '',
        read: '',
        admin: '',
        revoked: '',
      };
      beforeAll(async () => {
        // No key cache: a revocation must take effect on the very next request. Every operation
        // is tried without a key and with a revoked one (38 401s from one address): no throttle here.
        app = await startTestApp(backend, {
          env: { KEY_CACHE_TTL_MS: '0', AUTH_FAILURES_PER_MINUTE: '1000' },
        });
        const keys = createApiKeyService({ store: app.running.backends.apiKeys });
        for (const scope of ['ingest', 'read', 'admin'] as const) {
          secrets[scope] = (await keys.create({ name: `only ${scope}`, scopes: [scope] })).secret;
        }
        const revoked = await keys.create({ name: 'revoked', scopes: ['ingest', 'read', 'admin'] });
        secrets.revoked = revoked.secret;
        await keys.revoke(revoked.key.id);
      });
      afterAll(async () => {
        await app?.stop();
      });

      for (const operation of OPERATIONS) {
        it(`${operation.name}: 401 without a key or with a revoked one, FORBIDDEN without '${operation.scope}', allowed with it`, async () => {
          const missing = await operation.call(app, undefined);
          expect(missing).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
          const revoked = await operation.call(app, secrets.revoked);
          expect(revoked).toEqual({ status: 401, code: 'UNAUTHENTICATED' });
          for (const scope of ['ingest', 'read', 'admin'] as const) {
            const answer = await operation.call(app, secrets[scope]);
            if (scope === operation.scope) {
              expect(answer.code === undefined || answer.code === 'NOT_FOUND' ? 'allowed' : answer).toBe(
                'allowed',
              );
            } else {
              expect(answer.code).toBe('FORBIDDEN');
              if (!operation.name.includes(' ')) expect(answer.status).toBe(200);
              else expect(answer.status).toBe(403);
            }
          }
        });
      }

      it('keeps no secret in the database: every row of every table is free of it', async () => {
        const { key, secret } = await createApiKeyService({ store: app.running.backends.apiKeys }).create({
          name: 'needle',
          scopes: ['read'],
        });
        const db = app.running.backends.db;
        const tables = await db.query<{ table_name: string }>(
          "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        );
        expect(tables.length).toBeGreaterThan(5);
        const secretPart = secret.slice(secret.lastIndexOf('_') + 1);
        for (const { table_name } of tables) {
          const rows = await db.query<{ row: string }>(
            `SELECT row_to_json(t)::text AS row FROM "${table_name}" t`,
          );
          for (const { row } of rows) {
            expect(row.includes(secret) || row.includes(secretPart)).toBe(false);
          }
        }
        const [stored] = await db.query<{ prefix: string; hash_length: number }>(
          'SELECT prefix, length(secret_hash) AS hash_length FROM api_keys WHERE id = $1',
          [key.id],
        );
        expect(stored).toEqual({ prefix: secret.slice(0, 11), hash_length: 32 });
      });

      it('records which key wrote each event', async () => {
        const posted = await rest('POST', '/log', { ...event, session_id: 'who-wrote' })(app, secrets.ingest);
        expect(posted.status).toBe(202);
        const keys = await createApiKeyService({ store: app.running.backends.apiKeys }).list();
        const ingestKey = keys.find((key) => key.name === 'only ingest')!;
        const rows = await eventually(async () => {
          const found = await app.running.backends.db.query<{ api_key_id: string }>(
            "SELECT api_key_id FROM audit_events WHERE session_id = 'who-wrote'",
          );
          return found.length > 0 ? found : undefined;
        });
        expect(rows).toEqual([{ api_key_id: ingestKey.id }]);
      });
    },
  );
}
