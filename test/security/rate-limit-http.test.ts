import fc from 'fast-check';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

const BODY = JSON.stringify({ session_id: 'rate-limit', event_type: 'review_started', payload: {} });

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
}

function post(agent: http.Agent, baseUrl: string, key: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${baseUrl}/log`,
      {
        method: 'POST',
        agent,
        headers: { 'x-api-key': key, 'content-type': 'application/json', 'content-length': BODY.length },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
      },
    );
    request.on('error', reject);
    request.end(BODY);
  });
}

/**
 * Sends `total` requests over `connections` kept-alive connections, each sending its next request
 * once the previous one is answered; request `i` goes to the process `route(i)` picks.
 */
async function send(
  apps: readonly TestApp[],
  key: string,
  total: number,
  connections: number,
  route: (index: number) => number,
): Promise<Answer[]> {
  const agents = apps.map(() => new http.Agent({ keepAlive: true, maxSockets: connections }));
  const answers: Answer[] = [];
  let next = 0;
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (next < total) {
          const target = route(next++) % apps.length;
          answers.push(await post(agents[target]!, apps[target]!.baseUrl, key));
        }
      }),
    );
  } finally {
    for (const agent of agents) agent.destroy();
  }
  return answers;
}

const accepted = (answers: readonly Answer[]) => answers.filter((answer) => answer.status === 202).length;

describe.skipIf(!(postgresAvailable && redisAvailable))(
  'POST /log gives a key what its limit promises, on one or two API processes sharing Redis',
  () => {
    let one: TestApp;
    let two: TestApp;
    let keyNumber = 0;
    /** A fresh key (a fresh window) with its own limit. */
    const keyLimitedTo = async (perMinute: number) =>
      (
        await createApiKeyService({ store: one.running.backends.apiKeys }).create({
          name: `limited ${(keyNumber += 1)}`,
          scopes: ['ingest'],
          rateLimitPerMinute: perMinute,
        })
      ).secret;

    beforeAll(async () => {
      one = await startTestApp('postgres+redis', { role: 'serve' });
      two = await startTestApp('postgres+redis', { role: 'serve', sameBackendsAs: one });
    }, 60_000);
    afterAll(async () => {
      await two?.stop();
      await one?.stop();
    });

    for (const processes of [1, 2]) {
      for (const connections of [1, 4, 16]) {
        it(`100 a minute: 110 requests from ${connections} connection(s) on ${processes} process(es) get at least 99 202s and never over 100`, async () => {
          const key = await keyLimitedTo(100);
          const answers = await send([one, two].slice(0, processes), key, 110, connections, (i) => i);
          const count = accepted(answers);
          console.log(
            `100/min, ${processes} process(es), ${connections} connection(s): ${count} of 110 accepted`,
          );
          expect(count).toBeLessThanOrEqual(100);
          expect(count).toBeGreaterThanOrEqual(99);
          // Everything else was refused as rate limited, with what the caller needs to back off.
          const refused = answers.filter((answer) => answer.status !== 202);
          expect(refused.every((answer) => answer.status === 429)).toBe(true);
          for (const answer of refused) {
            expect(Number(answer.headers['retry-after'])).toBeGreaterThanOrEqual(1);
            expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(61);
            expect(answer.headers['x-ratelimit-limit']).toBe('100');
            expect(answer.headers['x-ratelimit-remaining']).toBe('0');
          }
          for (const answer of answers.filter((a) => a.status === 202)) {
            expect(answer.headers['x-ratelimit-limit']).toBe('100');
            expect(Number(answer.headers['x-ratelimit-remaining'])).toBeLessThan(100);
          }
        }, 60_000);
      }
    }

    it('1000 a minute: 1100 requests from 16 connections on two processes get at least 990 202s and never over 1000', async () => {
      const key = await keyLimitedTo(1000);
      const count = accepted(await send([one, two], key, 1100, 16, (i) => i));
      console.log(`1000/min, 2 processes, 16 connections: ${count} of 1100 accepted`);
      expect(count).toBeLessThanOrEqual(1000);
      expect(count).toBeGreaterThanOrEqual(990);
    }, 60_000);

    it('property: any split of 110 requests between the processes, from 1, 4 or 16 connections, gets at least 99 and never over 100', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(1, 4, 16),
          fc.array(fc.integer({ min: 0, max: 1 }), { minLength: 110, maxLength: 110 }),
          async (connections, targets) => {
            const key = await keyLimitedTo(100);
            const count = accepted(await send([one, two], key, 110, connections, (i) => targets[i]!));
            expect(count).toBeLessThanOrEqual(100);
            expect(count).toBeGreaterThanOrEqual(99);
          },
        ),
        { numRuns: 8 },
      );
    }, 120_000);
  },
);

/** graphql-rate-limit's field limit on `analytics` (120 a minute per key), through the limiter's fieldStore. */
async function analyticsUntilRefused(app: TestApp): Promise<{ allowed: number; code: unknown }> {
  // Its own request limit above the field's, so the field limit is what refuses.
  const { secret } = await createApiKeyService({ store: app.running.backends.apiKeys }).create({
    name: 'analytics reader',
    scopes: ['read'],
    rateLimitPerMinute: 1000,
  });
  const ask = async () => {
    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'x-api-key': secret, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ analytics(days: 1) { usage { totalEvents } } }' }),
    });
    return (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
  };
  for (let allowed = 0; allowed <= 200; allowed += 1) {
    const answer = await ask();
    if (answer.errors !== undefined) return { allowed, code: answer.errors[0]?.extensions?.code };
  }
  return { allowed: Number.POSITIVE_INFINITY, code: undefined };
}

for (const backend of ['embedded', 'postgres+redis'] as Backend[]) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `limits on ${backend}`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp(backend, { env: { RATE_LIMIT_PER_MINUTE: '100' } });
      }, 60_000);
      afterAll(async () => {
        await app?.stop();
      });

      it('100 a minute: 110 requests from 16 connections get 100 202s, then 429', async () => {
        const answers = await send([app], app.keys.ingestOnly, 110, 16, (i) => i);
        expect(accepted(answers)).toBe(100);
        expect(answers.filter((answer) => answer.status === 429)).toHaveLength(10);
      }, 60_000);

      it('keeps GraphQL field limits: analytics past 120 a minute is RATE_LIMITED', async () => {
        expect(await analyticsUntilRefused(app)).toEqual({ allowed: 120, code: 'RATE_LIMITED' });
      }, 120_000);
    },
  );
}
