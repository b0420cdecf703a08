import fc from 'fast-check';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { createAuthThrottle, throttleKeyOf } from '../../src/security/auth-throttle.js';
import { startTestApp, type TestApp } from '../support/app.js';

const START = 1_800_000_000_000 + 250;

describe('failed-authentication throttle (per client address, a sliding minute)', () => {
  it('lets an address fail its bound, then refuses it until the oldest failure leaves the window', () => {
    const clock = { now: START };
    const throttle = createAuthThrottle({ failuresPerMinute: 3, now: () => clock.now });
    for (let i = 0; i < 3; i += 1) {
      expect(throttle.refusal('203.0.113.7', undefined)).toBeUndefined();
      throttle.failed('203.0.113.7');
      clock.now += 10_000;
    }
    const wait = throttle.refusal('203.0.113.7', undefined);
    expect(wait).toBeGreaterThanOrEqual(30); // the first failure, 30 s ago, leaves 60-61 s after it
    expect(wait).toBeLessThanOrEqual(31);
    expect(throttle.refusal('203.0.113.8', undefined)).toBeUndefined();
    clock.now += wait! * 1000;
    expect(throttle.refusal('203.0.113.7', undefined)).toBeUndefined();
  });

  it('property: refuses exactly while the last minute (and its bucket) holds the bound, and Retry-After is enough', () => {
    const addresses = ['198.51.100.1', '198.51.100.2', '2001:db8::1'];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 9_000 }), fc.boolean()), {
          maxLength: 120,
        }),
        (bound, steps) => {
          const clock = { now: START };
          const throttle = createAuthThrottle({ failuresPerMinute: bound, now: () => clock.now });
          const failures = new Map<string, number[]>();
          for (const [which, pause, fails] of steps) {
            clock.now += pause;
            const address = addresses[which]!;
            const bucket = Math.floor(clock.now / 1000);
            const counted = (failures.get(address) ?? []).filter((at) => Math.floor(at / 1000) > bucket - 61);
            const wait = throttle.refusal(address, 'ag_guessing');
            expect(wait !== undefined, `${address} with ${counted.length} failures counted`).toBe(
              counted.length >= bound,
            );
            if (wait !== undefined) {
              const later = clock.now + wait * 1000;
              const left = counted.filter((at) => Math.floor(at / 1000) > Math.floor(later / 1000) - 61);
              expect(left.length).toBeLessThan(bound);
              continue; // refused: the attempt is not looked at, so it is no failure either
            }
            if (fails) {
              throttle.failed(address);
              failures.set(address, [...(failures.get(address) ?? []), clock.now]);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('lets a secret accepted lately through a throttled address, and no other', () => {
    const clock = { now: START };
    const throttle = createAuthThrottle({ failuresPerMinute: 1, now: () => clock.now });
    throttle.vouch('ag_good');
    throttle.failed('203.0.113.9');
    expect(throttle.refusal('203.0.113.9', 'ag_good')).toBeUndefined();
    expect(throttle.refusal('203.0.113.9', 'ag_good ')).toBeGreaterThanOrEqual(1);
    expect(throttle.refusal('203.0.113.9', undefined)).toBeGreaterThanOrEqual(1);
    expect(throttle.refusal('203.0.113.9', '')).toBeGreaterThanOrEqual(1);
    clock.now += 60 * 60_000 + 1; // vouched for an hour
    throttle.failed('203.0.113.9');
    expect(throttle.refusal('203.0.113.9', 'ag_good')).toBeGreaterThanOrEqual(1);
  });

  it('counts IPv4-mapped IPv6 as the IPv4 address, and IPv6 by its /64', () => {
    expect(throttleKeyOf('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(throttleKeyOf('192.0.2.1')).toBe('192.0.2.1');
    expect(throttleKeyOf('2001:db8:0:1::1')).toBe(throttleKeyOf('2001:0db8:0000:0001:ffff:ffff:ffff:ffff'));
    expect(throttleKeyOf('2001:db8:0:1::1')).not.toBe(throttleKeyOf('2001:db8:0:2::1'));
    expect(throttleKeyOf('::1')).toBe('0:0:0:0::/64');
  });

  it('property: every spelling of an IPv6 address, and every address of its /64, is one key', () => {
    fc.assert(
      fc.property(
        fc.ipV6(),
        fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }),
        (address, low) => {
          // The URL parser prints the canonical, compressed form of what it was given.
          const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
          expect(throttleKeyOf(canonical)).toBe(throttleKeyOf(address));
          const groups = new URL(`http://[${canonical}]/`).hostname;
          const expanded = expand(groups.slice(1, -1));
          const sibling = [...expanded.slice(0, 4), ...low.map((group) => group.toString(16))].join(':');
          if (!canonical.startsWith('::ffff:')) expect(throttleKeyOf(sibling)).toBe(throttleKeyOf(address));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

/** The eight groups of an IPv6 address in the URL parser's form (no embedded IPv4). */
function expand(address: string): string[] {
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  if (!address.includes('::')) return left;
  return [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  code: string | undefined;
}

/** One request on its own connection from the loopback address `from` (all of 127/8 is local). */
function call(
  app: TestApp,
  from: string,
  path: string,
  options: { key?: string; body?: unknown } = {},
): Promise<Answer> {
  const body = JSON.stringify(options.body ?? {});
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  };
  if (options.key !== undefined) headers['x-api-key'] = options.key;
  return new Promise((resolve, reject) => {
    const request = http.request(
      `${app.baseUrl}${path}`,
      { method: 'POST', agent: false, localAddress: from, headers },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          const parsed = JSON.parse(text) as {
            error?: { code: string };
            errors?: Array<{ extensions?: { code?: string } }>;
          };
          resolve({
            status: response.statusCode ?? 0,
            retryAfter: response.headers['retry-after'],
            code: parsed.error?.code ?? parsed.errors?.[0]?.extensions?.code,
          });
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const EVENT = { session_id: 'throttle', event_type: 'review_started', payload: {} };
/** Well-formed but unknown: each attempt costs a database lookup unless it is throttled first. */
const unknownKey = (n: number) => `ag_aaaaaaa${String.fromCharCode(97 + (n % 26))}_${'A'.repeat(43)}`;

describe('HTTP: repeated 401s from one address are answered 429 before authentication', () => {
  let app: TestApp;
  let lookups = 0;
  let stored = '';
  let unseen = '';
  beforeAll(async () => {
    // No key cache: every unknown key would be looked up again.
    app = await startTestApp('embedded', { env: { AUTH_FAILURES_PER_MINUTE: '5', KEY_CACHE_TTL_MS: '0' } });
    const keys = createApiKeyService({ store: app.running.backends.apiKeys });
    stored = (await keys.create({ name: 'stored', scopes: ['ingest'] })).secret;
    unseen = (await keys.create({ name: 'unseen', scopes: ['ingest'] })).secret;
    const store = app.running.backends.apiKeys;
    const findCredentials = store.findCredentials.bind(store);
    store.findCredentials = (prefix) => {
      lookups += 1;
      return findCredentials(prefix);
    };
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('answers 429 with Retry-After past the bound, without looking the key up, on REST and GraphQL', async () => {
    const from = '127.0.0.2';
    // Accepted before the probing starts: this process remembers the key.
    expect((await call(app, from, '/log', { key: app.keys.admin, body: EVENT })).status).toBe(202);
    const before = lookups;
    for (let n = 0; n < 5; n += 1) {
      expect(await call(app, from, '/log', { key: unknownKey(n), body: EVENT })).toMatchObject({
        status: 401,
        code: 'UNAUTHENTICATED',
      });
    }
    expect(lookups - before).toBe(5);
    for (let n = 5; n < 15; n += 1) {
      const refused = await call(app, from, '/log', { key: unknownKey(n), body: EVENT });
      expect(refused).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
      expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(refused.retryAfter)).toBeLessThanOrEqual(61);
    }
    expect(lookups - before).toBe(5);
    // No key at all, and GraphQL, which authenticates in its own context function: refused the same.
    expect(await call(app, from, '/log', { body: EVENT })).toMatchObject({ status: 429 });
    expect(
      await call(app, from, '/graphql', { key: unknownKey(20), body: { query: '{ eventTypes { count } }' } }),
    ).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    expect(lookups - before).toBe(5);
    // Keys this process accepted lately still work from the throttled address: the admin key
    // (recalled), and a stored key that was accepted once (looked up again: no key cache here).
    expect((await call(app, from, '/log', { key: app.keys.admin, body: EVENT })).status).toBe(202);
    expect((await call(app, '127.0.0.9', '/log', { key: stored, body: EVENT })).status).toBe(202);
    expect((await call(app, from, '/log', { key: stored, body: EVENT })).status).toBe(202);
    // A stored key never seen before is refused with the rest until the failures age out.
    expect((await call(app, from, '/log', { key: unseen, body: EVENT })).status).toBe(429);
    expect(
      (
        await call(app, from, '/graphql', {
          key: app.keys.admin,
          body: { query: '{ eventTypes { count } }' },
        })
      ).status,
    ).toBe(200);
  });

  it('counts GraphQL’s 401s and missing keys too, and leaves other addresses alone', async () => {
    const from = '127.0.0.3';
    for (let n = 0; n < 3; n += 1) {
      expect(
        (await call(app, from, '/graphql', { body: { query: '{ eventTypes { count } }' } })).status,
      ).toBe(401);
    }
    for (let n = 0; n < 2; n += 1) expect((await call(app, from, '/log', { body: EVENT })).status).toBe(401);
    expect((await call(app, from, '/log', { body: EVENT })).status).toBe(429);
    // Other addresses: accepted with a good key, and their own budget of failures.
    const other = '127.0.0.4';
    expect((await call(app, other, '/log', { key: app.keys.ingestOnly, body: EVENT })).status).toBe(202);
    expect((await call(app, other, '/log', { key: unknownKey(1), body: EVENT })).status).toBe(401);
    expect((await call(app, other, '/log', { key: app.keys.admin, body: EVENT })).status).toBe(202);
  });

  it('leaves open routes open and counts no failure for a 403 (a known key without the scope)', async () => {
    const from = '127.0.0.5';
    for (let n = 0; n < 8; n += 1) {
      expect((await call(app, from, '/log', { key: app.keys.readOnly, body: EVENT })).status).toBe(403);
    }
    expect((await call(app, from, '/log', { key: unknownKey(2), body: EVENT })).status).toBe(401);
    for (let n = 0; n < 5; n += 1) await call(app, from, '/log', { body: EVENT });
    const health = await new Promise<number>((resolve, reject) => {
      http
        .get(`${app.baseUrl}/health`, { agent: false, localAddress: from }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        })
        .on('error', reject);
    });
    expect(health).toBe(200);
  });
});
