import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  createMemoryRateLimiter,
  type RateLimitDecision,
  type RateLimiter,
} from '../../src/security/rate-limit.js';
import { createRedisRateLimiter } from '../../src/security/redis-rate-limiter.js';
import { REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';

const MINUTE = 60_000;
/** A moment well inside a bucket, so tests start from a known place in the window. */
const START = 1_800_000_000_000 + 250;

const prefixes: string[] = [];
const freshPrefix = (): string => {
  const prefix = uniqueStream('ratelimit');
  prefixes.push(prefix);
  return prefix;
};

/** A limiter on a clock the test moves: `open()` gives another one (a process) on the same backend. */
interface Clocked {
  clock: { now: number };
  open(): Promise<RateLimiter>;
}

const opened: RateLimiter[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
});

const backends: Array<[string, boolean, () => Clocked]> = [
  [
    'in-process',
    true,
    () => {
      const clock = { now: START };
      // One process only: the embedded mode has no replicas.
      let limiter: RateLimiter | undefined;
      return { clock, open: async () => (limiter ??= createMemoryRateLimiter(() => clock.now)) };
    },
  ],
  [
    'Redis',
    redisAvailable,
    () => {
      const clock = { now: START };
      const prefix = freshPrefix();
      return {
        clock,
        async open() {
          const limiter = await createRedisRateLimiter(REDIS_URL, prefix, { now: () => clock.now });
          opened.push(limiter);
          return limiter;
        },
      };
    },
  ],
];

/** Hits that arrive together (one event-loop turn). */
const together = (limiter: RateLimiter, count: number, id: string, limit: number) =>
  Promise.all(Array.from({ length: count }, () => limiter.hit(id, limit)));

for (const [name, available, make] of backends) {
  describe.skipIf(!available)(`${name} rate limiter: a sliding window of a minute`, () => {
    it('allows exactly the limit of hits arriving together, in order, with what remains', async () => {
      const limiter = await make().open();
      const decisions = await together(limiter, 8, 'key', 5);
      expect(decisions.map((decision) => decision.allowed)).toEqual([
        true,
        true,
        true,
        true,
        true,
        false,
        false,
        false,
      ]);
      expect(decisions.map((decision) => decision.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0]);
      for (const decision of decisions) {
        expect(decision.limit).toBe(5);
        expect(decision.resetSeconds).toBeGreaterThanOrEqual(60);
        expect(decision.resetSeconds).toBeLessThanOrEqual(61);
      }
    });

    it('keeps each key’s count apart, and each request its own limit', async () => {
      const limiter = await make().open();
      const [a1, b1, a2, b2, a3] = await Promise.all([
        limiter.hit('a', 2),
        limiter.hit('b', 10),
        limiter.hit('a', 2),
        limiter.hit('b', 10),
        limiter.hit('a', 2),
      ]);
      expect([a1, a2, a3].map((decision) => decision!.allowed)).toEqual([true, true, false]);
      expect([b1, b2].map((decision) => decision!.remaining)).toEqual([9, 8]);
    });

    it('has no window edge: a full burst just before a minute boundary leaves nothing just after it', async () => {
      const { clock, open } = make();
      const limiter = await open();
      clock.now = Math.ceil(START / MINUTE) * MINUTE - 10; // 10 ms before a fixed window would reset
      expect((await together(limiter, 10, 'edge', 10)).every((decision) => decision.allowed)).toBe(true);
      clock.now += 20; // a fixed window would allow 10 more here
      const after = await together(limiter, 10, 'edge', 10);
      expect(after.some((decision) => decision.allowed)).toBe(false);
      // Retry-After says when: the burst's bucket leaves the window 60-61 s after the burst.
      const wait = after[0]!.resetSeconds;
      expect(wait).toBeGreaterThanOrEqual(60);
      expect(wait).toBeLessThanOrEqual(61);
      clock.now += wait * 1000;
      expect((await limiter.hit('edge', 10)).allowed).toBe(true);
    });

    it('property: no minute-long interval ever holds more than the limit, and a refusal is always justified', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 12 }),
          // Groups of hits arriving together, each after a pause: 0 to 15 s, at times straddling buckets.
          fc.array(fc.tuple(fc.integer({ min: 0, max: 15_000 }), fc.integer({ min: 1, max: 6 })), {
            minLength: 1,
            maxLength: 40,
          }),
          async (limit, groups) => {
            const { clock, open } = make();
            const limiter = await open();
            const id = `k${Math.random()}`;
            const allowedAt: number[] = [];
            for (const [pause, size] of groups) {
              clock.now += pause;
              const decisions = await together(limiter, size, id, limit);
              for (const decision of decisions) {
                if (decision.allowed) {
                  allowedAt.push(clock.now);
                  continue;
                }
                // Refused only when the last 61 s (the window and its bucket) already hold the limit.
                const recent = allowedAt.filter((at) => at > clock.now - MINUTE - 1000).length;
                expect(recent).toBeGreaterThanOrEqual(limit);
                expect(decision.resetSeconds).toBeGreaterThanOrEqual(1);
              }
            }
            for (const at of allowedAt) {
              const inWindow = allowedAt.filter((other) => other >= at && other < at + MINUTE).length;
              expect(inWindow).toBeLessThanOrEqual(limit);
            }
          },
        ),
        { numRuns: name === 'Redis' ? 60 : 300 },
      );
    });

    it('property: once refused, a hit after Retry-After seconds is allowed', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 8 }),
          fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 20 }),
          async (limit, pauses) => {
            const { clock, open } = make();
            const limiter = await open();
            const id = `k${Math.random()}`;
            for (const pause of pauses) {
              clock.now += pause;
              await limiter.hit(id, limit);
            }
            let refused: RateLimitDecision | undefined;
            while ((refused = await limiter.hit(id, limit)).allowed);
            clock.now += refused.resetSeconds * 1000;
            expect((await limiter.hit(id, limit)).allowed).toBe(true);
          },
        ),
        { numRuns: name === 'Redis' ? 40 : 200 },
      );
    });
  });
}

describe.skipIf(!redisAvailable)('Redis rate limiter shared by processes', () => {
  const open = async (prefix: string, now?: () => number) => {
    const limiter = await createRedisRateLimiter(REDIS_URL, prefix, now ? { now } : {});
    opened.push(limiter);
    return limiter;
  };
  const windowTotal = async (prefix: string, id: string) => {
    const redis = new Redis(REDIS_URL);
    try {
      const counts = await redis.hvals(`${prefix}:${id}`);
      return counts.reduce((sum, count) => sum + Number(count), 0);
    } finally {
      redis.disconnect();
    }
  };

  it('shares one exact limit between limiters hitting concurrently', async () => {
    const prefix = freshPrefix();
    const [one, two] = [await open(prefix), await open(prefix)];
    const decisions: RateLimitDecision[] = await Promise.all(
      Array.from({ length: 30 }, (_, index) => (index % 2 === 0 ? one : two).hit('shared', 17)),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(17);
    expect(new Set(decisions.map((decision) => decision.remaining)).size).toBe(17);
  });

  it('far below a limit, decides a busy key’s hits from units leased ahead, without asking Redis each time', async () => {
    const prefix = freshPrefix();
    const clock = { now: START };
    const limiter = await open(prefix, () => clock.now);
    // A fresh key leases nothing: nothing is known of its rate yet.
    expect((await limiter.hit('busy', 10_000_000)).remaining).toBe(9_999_999);
    expect(await windowTotal(prefix, 'busy')).toBe(1);
    // Busy for a few seconds: 20,000 hits.
    for (let second = 0; second < 4; second += 1) {
      for (let i = 0; i < 5_000; i += 1) await limiter.hit('busy', 10_000_000);
      clock.now += 1000;
    }
    // Now each lease is the cap, 256 (under the window's average per bucket, 20,001 / 61).
    const first = await limiter.hit('busy', 10_000_000);
    const counted = await windowTotal(prefix, 'busy');
    expect(counted).toBe(20_002 + 256);
    const decisions: RateLimitDecision[] = [];
    for (let i = 0; i < 100; i += 1) decisions.push(await limiter.hit('busy', 10_000_000));
    expect(await windowTotal(prefix, 'busy')).toBe(counted);
    expect(decisions.map((decision) => decision.remaining)).toEqual(
      Array.from({ length: 100 }, (_, i) => first.remaining - 1 - i),
    );
  });

  it('leases nothing for a key asked once in a while: no unit held, none to give back', async () => {
    const prefix = freshPrefix();
    const clock = { now: START };
    const limiter = await open(prefix, () => clock.now);
    for (let i = 0; i < 30; i += 1) {
      await limiter.hit('calm', 100_000);
      clock.now += 2000;
    }
    expect(await windowTotal(prefix, 'calm')).toBe(30);
  });

  it('gives unused leased units back when their bucket ends, so the window counts only what was used', async () => {
    const prefix = freshPrefix();
    const clock = { now: START };
    const limiter = await open(prefix, () => clock.now);
    // 2000 hits in the first bucket: busy enough to lease.
    for (let i = 0; i < 2000; i += 1) await limiter.hit('spare', 100_000);
    expect(await windowTotal(prefix, 'spare')).toBeGreaterThan(2000);
    clock.now += 1000; // the lease's bucket is over; the next hit asks Redis and gives the rest back
    await limiter.hit('spare', 100_000);
    const redis = new Redis(REDIS_URL);
    try {
      const buckets = await redis.hgetall(`${prefix}:spare`);
      expect(buckets[String(Math.floor(START / 1000))]).toBe('2000');
    } finally {
      redis.disconnect();
    }
  });

  it('gives held units back on close, for the other processes', async () => {
    const prefix = freshPrefix();
    const clock = { now: START };
    const leaving = await createRedisRateLimiter(REDIS_URL, prefix, { now: () => clock.now });
    for (let i = 0; i < 2000; i += 1) await leaving.hit('handover', 100_000);
    expect(await windowTotal(prefix, 'handover')).toBeGreaterThan(2000);
    await leaving.close();
    expect(await windowTotal(prefix, 'handover')).toBe(2000);
  });

  it('property: any number of processes and connections, arriving in any interleaving, get at least 99 and never over 100 of 110 hits', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(1, 4, 16),
        fc.array(fc.nat(), { minLength: 110, maxLength: 110 }),
        fc.array(fc.constantFrom(0, 0, 0, 1, 2), { minLength: 110, maxLength: 110 }),
        async (processes, connections, targets, pauses) => {
          const prefix = freshPrefix();
          const limiters = await Promise.all(Array.from({ length: processes }, () => open(prefix)));
          let next = 0;
          let allowed = 0;
          // Each connection sends its next hit once the previous one is answered.
          const connection = async () => {
            while (next < 110) {
              const index = next++;
              for (let turn = 0; turn < pauses[index]!; turn += 1) await new Promise(setImmediate);
              const decision = await limiters[targets[index]! % processes]!.hit('burst', 100);
              if (decision.allowed) allowed += 1;
            }
          };
          await Promise.all(Array.from({ length: connections }, connection));
          expect(allowed).toBeLessThanOrEqual(100);
          expect(allowed).toBeGreaterThanOrEqual(99);
          await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
        },
      ),
      { numRuns: 25 },
    );
  });

  it('1000 a minute: 1100 hits from 16 connections on two processes, spread over buckets, get at least 990 and never over 1000', async () => {
    const prefix = freshPrefix();
    const limiters = [await open(prefix), await open(prefix)];
    let next = 0;
    let allowed = 0;
    // Pauses spread the hits over a second or two, so leases end with their buckets unused.
    await Promise.all(
      Array.from({ length: 16 }, async (_, connection) => {
        while (next < 1100) {
          next += 1;
          if ((await limiters[connection % 2]!.hit('big', 1000)).allowed) allowed += 1;
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 40));
        }
      }),
    );
    expect(allowed).toBeLessThanOrEqual(1000);
    expect(allowed).toBeGreaterThanOrEqual(990);
  });

  it('refuses every caller of a failed call with SERVICE_UNAVAILABLE', async () => {
    const limiter = await createRedisRateLimiter(REDIS_URL, freshPrefix());
    await limiter.close();
    const outcomes = await Promise.allSettled([
      limiter.hit('a', 5),
      limiter.hit('a', 5),
      limiter.hit('b', 5),
    ]);
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected');
      const reason = (outcome as PromiseRejectedResult).reason as AppError;
      expect(reason).toBeInstanceOf(AppError);
      expect(reason.code).toBe('SERVICE_UNAVAILABLE');
    }
  });

  it('keeps graphql-rate-limit’s field timestamps, expiring with their window', async () => {
    const limiter = await open(freshPrefix());
    const identity = { contextIdentity: 'key', fieldIdentity: 'Query.analytics' };
    expect(await limiter.fieldStore.getForIdentity(identity)).toEqual([]);
    await limiter.fieldStore.setForIdentity(identity, [1, 2, 3], 60_000);
    expect(await limiter.fieldStore.getForIdentity(identity)).toEqual([1, 2, 3]);
    await limiter.fieldStore.setForIdentity(identity, [4], 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await limiter.fieldStore.getForIdentity(identity)).toEqual([]);
  });
});

afterAll(async () => {
  if (!redisAvailable || prefixes.length === 0) return;
  const redis = new Redis(REDIS_URL);
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});
