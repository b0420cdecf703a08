import { describe, expect, it } from 'vitest';
import { freePort, startTestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';
import { restContract } from './rest.contract.js';

restContract('embedded');
restContract('postgres+redis', { skip: !(postgresAvailable && redisAvailable) });

describe.skipIf(!(postgresAvailable && redisAvailable))('front door under pressure', () => {
  it('answers 503 with Retry-After once the queue reaches its high-water mark, and stores nothing of it', async () => {
    // `serve` alone: no worker drains the queue, so the mark is reached deterministically.
    const app = await startTestApp('postgres+redis', { role: 'serve', env: { QUEUE_MAX_LENGTH: '2' } });
    try {
      const post = () =>
        fetch(`${app.baseUrl}/log`, {
          method: 'POST',
          headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
          body: JSON.stringify({ session_id: 1, event_type: 'review_started', payload: {} }),
        });
      expect((await post()).status).toBe(202);
      expect((await post()).status).toBe(202);
      const refused = await post();
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('QUEUE_FULL');
      expect((await app.running.backends.queue.stats()).depth).toBe(2);
    } finally {
      await app.stop();
    }
  });
});

describe("the spec's two ports", () => {
  it('serve the same routes on PRODUCER_PORT and QUERY_SERVICE_PORT', async () => {
    const [producer, query] = [await freePort(), await freePort()];
    const app = await startTestApp('embedded', {
      env: { PRODUCER_PORT: String(producer), QUERY_SERVICE_PORT: String(query) },
    });
    try {
      expect(app.running.ports).toEqual([producer, query]);
      for (const port of [producer, query]) {
        const answer = await fetch(`http://127.0.0.1:${port}/events?limit=1`, {
          headers: { 'x-api-key': app.keys.admin },
        });
        expect(answer.status).toBe(200);
      }
    } finally {
      await app.stop();
    }
  });
});
