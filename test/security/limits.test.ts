import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { getIntrospectionQuery } from 'graphql';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QUERY_LIMITS } from '../../src/graphql/limits.js';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { freePort, startTestApp, type TestApp } from '../support/app.js';
import { hostileDocuments } from '../support/hostile-documents.js';
import { spawnAuditgraph, waitUntilReady, type AuditgraphProcess } from '../support/processes.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  uniqueStream,
} from '../support/services.js';

const post = (baseUrl: string, key: string) =>
  fetch(`${baseUrl}/log`, {
    method: 'POST',
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify({ session_id: 'limits', event_type: 'review_started' }),
  });

/** Waits, if needed, until at least `marginMs` remain in Redis's current one-minute window. */
async function awayFromWindowEdge(marginMs: number): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const [seconds, micros] = await redis.time();
    const left = 60_000 - ((Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)) % 60_000);
    if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 50));
  } finally {
    redis.disconnect();
  }
}

describe.skipIf(!(postgresAvailable && redisAvailable))(
  'one rate limit across API processes sharing Redis',
  () => {
    const cleanups: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
    });

    it('allows exactly the key’s limit per window across two serve processes, then 429 with Retry-After', async () => {
      const database = await createTestDatabase();
      cleanups.push(() => database.drop());
      const adminKey = `limits_${randomBytes(12).toString('hex')}`;
      const ports = [await freePort(), await freePort()];
      const common = {
        DATABASE_URL: database.url,
        REDIS_URL,
        QUEUE_STREAM: uniqueStream('limits'),
        ADMIN_API_KEY: adminKey,
        KEY_CACHE_TTL_MS: '0',
      };
      const processes: AuditgraphProcess[] = ports.map((port) =>
        spawnAuditgraph('serve', {
          ...common,
          PRODUCER_PORT: String(port),
          QUERY_SERVICE_PORT: String(port),
        }),
      );
      cleanups.push(async () => {
        for (const proc of processes) proc.kill('SIGKILL');
        await Promise.all(processes.map((proc) => proc.exited));
      });
      await Promise.all(
        processes.map((proc, index) => waitUntilReady(`http://127.0.0.1:${ports[index]}/health/ready`, proc)),
      );
      const created = await fetch(`http://127.0.0.1:${ports[0]}/graphql`, {
        method: 'POST',
        headers: { 'x-api-key': adminKey, 'content-type': 'application/json' },
        body: JSON.stringify({
          query:
            'mutation { createApiKey(input: { name: "limited", scopes: [ingest], rateLimitPerMinute: 20 }) { secret } }',
        }),
      });
      const secret = ((await created.json()) as { data: { createApiKey: { secret: string } } }).data
        .createApiKey.secret;

      await awayFromWindowEdge(10_000);
      const answers = [];
      for (let index = 0; index < 30; index += 1) {
        answers.push(await post(`http://127.0.0.1:${ports[index % 2]}`, secret));
      }
      const statuses = answers.map((answer) => answer.status);
      expect(statuses.filter((status) => status === 202)).toHaveLength(20);
      expect(statuses.slice(0, 20).every((status) => status === 202)).toBe(true);
      expect(statuses.slice(20).every((status) => status === 429)).toBe(true);
      const refused = answers[25]!;
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.headers.get('x-ratelimit-limit')).toBe('20');
      expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
      expect(answers[3]!.headers.get('x-ratelimit-remaining')).toBe('16');
    }, 90_000);
  },
);

describe('GraphQL abuse is refused before execution', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded');
  });
  afterAll(async () => {
    await app?.stop();
  });

  const graphql = async (query: string, key = app.keys.admin) => {
    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as {
      data?: unknown;
      errors?: Array<{ message: string; extensions?: { code?: string; limit?: string } }>;
    };
    return { status: response.status, headers: response.headers, ...body };
  };
  const stored = async () =>
    (await app.running.backends.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_events'))[0]!.n;

  it('refuses a query nested deeper than the limit', async () => {
    // Lists of lists: each level of fields { type { … } } multiplies what execution would return.
    let selection = 'name';
    for (let level = 0; level < 10; level += 1) selection = `fields { type { ${selection} } }`;
    const answer = await graphql(`{ __schema { types { ${selection} } } }`);
    expect(answer.status).toBe(400);
    expect(answer.data).toBeUndefined();
    expect(answer.errors?.[0]?.message).toMatch(
      /Introspection depth exceeds the limit of 20: `__schema\.types\.fields.*` is 21/,
    );
    expect(answer.errors?.[0]?.extensions?.limit).toBe('maxIntrospectionDepth');
  });

  it('answers graphql’s standard introspection query (15 deep, its ofType chain included)', async () => {
    const answer = await graphql(getIntrospectionQuery());
    expect(answer.errors).toBeUndefined();
    expect(answer.status).toBe(200);
    const types = (answer.data as { __schema: { types: Array<{ name: string }> } }).__schema.types;
    expect(types.map((type) => type.name)).toContain('AuditEvent');
  });

  it('refuses generated hostile documents under the size limit with 400, naming the limit', async () => {
    await fc.assert(
      fc.asyncProperty(hostileDocuments(DEFAULT_QUERY_LIMITS), async ({ query, by }) => {
        const answer = await graphql(query);
        expect(answer.status).toBe(400);
        expect(answer.data).toBeUndefined();
        expect(answer.errors).toHaveLength(1);
        expect(answer.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
        expect(by).toContain(answer.errors?.[0]?.extensions?.limit);
        expect(answer.errors?.[0]?.message).toMatch(/limit/);
      }),
      { numRuns: 40 },
    );
  });

  it('stops Apollo’s validation at a refused document: none of graphql’s own errors follow', async () => {
    const rest = 'nope x: __typename x: eventTypes { count }';
    const repeated = (times: number) =>
      `{ events { nodes { ${Array.from({ length: times }, () => 'payload').join(' ')} } } ${rest} }`;
    const within = await graphql(repeated(10));
    expect(within.status).toBe(400);
    expect(within.errors?.map((error) => error.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/Cannot query field "nope"/),
        expect.stringMatching(/Fields "x" conflict/),
      ]),
    );
    const refused = await graphql(repeated(11));
    expect(refused.status).toBe(400);
    expect(refused.errors?.map((error) => error.message)).toEqual([
      expect.stringMatching(/`events\.nodes\.payload` is selected more than 10 times/),
    ]);
  });

  it('refuses too many aliases, executing none of the aliased mutations', async () => {
    const before = await stored();
    const aliases = Array.from(
      { length: 31 },
      (_, index) =>
        `a${index}: logEvent(input: { sessionId: "alias", eventType: review_started }) { eventId }`,
    );
    const answer = await graphql(`mutation { ${aliases.join('\n')} }`);
    expect(answer.status).toBe(400);
    expect(answer.errors?.[0]?.message).toMatch(/more than 30 aliases; the limit is 30/);
    expect((await app.running.backends.queue.stats()).depth).toBe(0);
    expect(await stored()).toBe(before);
  });

  it('refuses a query whose nested pages cost more than the limit', async () => {
    const pages = Array.from(
      { length: 26 },
      (_, index) => `p${index}: events(first: 1000) { nodes { id payload } }`,
    );
    const answer = await graphql(`{ ${pages.join('\n')} }`);
    expect(answer.status).toBe(400);
    expect(answer.errors?.[0]?.message).toMatch(
      /cost exceeds the limit of 50000: at least \d+ by `p\d+\.nodes/,
    );
  });

  it('refuses query text over the size limit before parsing it, with 413', async () => {
    const answer = await graphql(`{ eventTypes { count } } #${'x'.repeat(20_001)}`);
    expect(answer.status).toBe(413);
    expect(answer.errors?.[0]?.extensions?.code).toBe('QUERY_TOO_LARGE');
  });

  it('limits analytics per key at the field level, answering RATE_LIMITED', async () => {
    const codes: Array<string | undefined> = [];
    for (let call = 0; call < 121; call += 1) {
      codes.push((await graphql('{ analytics(days: 1) { days } }')).errors?.[0]?.extensions?.code);
    }
    expect(codes.slice(0, 120).every((code) => code === undefined)).toBe(true);
    expect(codes[120]).toBe('RATE_LIMITED');
  });

  it('answers a key over its request limit with HTTP 429 and RATE_LIMITED on GraphQL too', async () => {
    const { secret } = await createApiKeyService({ store: app.running.backends.apiKeys }).create({
      name: 'tiny',
      scopes: ['read'],
      rateLimitPerMinute: 2,
    });
    // The in-process limiter's windows follow this process's clock.
    const left = 60_000 - (Date.now() % 60_000);
    if (left < 5_000) await new Promise((resolve) => setTimeout(resolve, left + 50));
    expect((await graphql('{ eventTypes { count } }', secret)).status).toBe(200);
    expect((await graphql('{ eventTypes { count } }', secret)).status).toBe(200);
    const refused = await graphql('{ eventTypes { count } }', secret);
    expect(refused.status).toBe(429);
    expect(refused.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
