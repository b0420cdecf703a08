import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import {
  createMemoryRateLimiter,
  createRedisRateLimiter,
  type RateLimitDecision,
  type RateLimiter,
} from '../../src/security/rate-limit.js';
import { REDIS_URL, redisAvailable, uniqueStream } from '../support/services.js';

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

const prefixes: string[] = [];

/** A key prefix of its own (removed after the suite), with at least `marginMs` left in the window. */
async function freshPrefix(marginMs = 5_000): Promise<string> {
  await awayFromWindowEdge(marginMs);
  const prefix = uniqueStream('ratelimit');
  prefixes.push(prefix);
  return prefix;
}

describe.skipIf(!redisAvailable)('Redis rate limiter, hits of one event-loop turn counted together', () => {
  const opened: RateLimiter[] = [];
  const open = async (prefix: string) => {
    const limiter = await createRedisRateLimiter(REDIS_URL, prefix);
    opened.push(limiter);
    return limiter;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((limiter) => limiter.close()));
  });

  it('gives concurrent hits on one key consecutive counts: exactly the limit is allowed', async () => {
    const prefix = await freshPrefix();
    const limiter = await open(prefix);
    const decisions = await Promise.all(Array.from({ length: 8 }, () => limiter.hit('key', 5)));
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
      expect(decision.resetSeconds).toBeGreaterThan(0);
      expect(decision.resetSeconds).toBeLessThanOrEqual(60);
    }
  });

  it('keeps each key’s count apart, and each request its own limit, within one call', async () => {
    const prefix = await freshPrefix();
    const limiter = await open(prefix);
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

  it('shares one exact limit between limiters (processes) hitting concurrently', async () => {
    const prefix = await freshPrefix();
    const one = await open(prefix);
    const two = await open(prefix);
    const decisions: RateLimitDecision[] = await Promise.all(
      Array.from({ length: 30 }, (_, index) => (index % 2 === 0 ? one : two).hit('shared', 17)),
    );
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(17);
    expect(new Set(decisions.map((decision) => decision.remaining)).size).toBe(17);
  });

  it('far below a limit, decides hits from values taken ahead, without asking Redis each time', async () => {
    const prefix = await freshPrefix();
    const limiter = await open(prefix);
    const redis = new Redis(REDIS_URL);
    try {
      const counter = async () => {
        const [key] = await redis.keys(`${prefix}:*`);
        return Number(await redis.get(key!));
      };
      expect((await limiter.hit('busy', 10_000_000)).remaining).toBe(9_999_999);
      expect(await counter()).toBe(257); // the hit and a lease of 256
      const decisions: RateLimitDecision[] = [];
      for (let i = 0; i < 100; i += 1) decisions.push(await limiter.hit('busy', 10_000_000));
      expect(await counter()).toBe(257);
      expect(decisions.map((decision) => decision.remaining)).toEqual(
        Array.from({ length: 100 }, (_, i) => 9_999_998 - i),
      );
    } finally {
      redis.disconnect();
    }
  });

  it('never allows more than the limit across limiters taking values ahead, and never one value twice', async () => {
    const prefix = await freshPrefix(10_000);
    const one = await open(prefix);
    const two = await open(prefix);
    const decisions: RateLimitDecision[] = [];
    // Many turns of a few hits each, so both take leases and spend them while the other does too.
    for (let turn = 0; turn < 100; turn += 1) {
      decisions.push(
        ...(await Promise.all(
          Array.from({ length: 10 }, (_, i) => (i % 3 === 0 ? one : two).hit('shared', 640)),
        )),
      );
    }
    const allowed = decisions.filter((decision) => decision.allowed);
    expect(allowed.length).toBeLessThanOrEqual(640);
    // Values held unused by the other limiter are the only ones lost: a small share near the end.
    expect(allowed.length).toBeGreaterThanOrEqual(600);
    expect(new Set(allowed.map((decision) => decision.remaining)).size).toBe(allowed.length);
  });

  it('refuses every caller of a failed call with SERVICE_UNAVAILABLE', async () => {
    const prefix = uniqueStream('ratelimit');
    const limiter = await createRedisRateLimiter(REDIS_URL, prefix);
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
});

describe('in-process rate limiter', () => {
  it('allows exactly the limit per window, then refuses until the next window', async () => {
    let now = 120_000;
    const limiter = createMemoryRateLimiter(() => now);
    const decisions = await Promise.all(Array.from({ length: 4 }, () => limiter.hit('k', 3)));
    expect(decisions.map((decision) => decision.allowed)).toEqual([true, true, true, false]);
    now += 60_000;
    expect((await limiter.hit('k', 3)).remaining).toBe(2);
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
