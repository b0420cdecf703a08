import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad } from '../support/fault-load.js';
import { eventually } from '../support/fault-services.js';
import { report, startFaultStack, type FaultStack } from '../support/fault-stack.js';

/** A queued event that passes the worker's parsing but that PostgreSQL refuses every time (NUL in jsonb). */
const unstorable = () =>
  JSON.stringify({
    v: 1,
    id: randomUUID(),
    eventType: 'error_occurred',
    sessionId: 'poison',
    payload: { message: 'nul \u0000 byte' },
    clientTime: null,
    receivedAt: new Date().toISOString(),
    apiKeyId: null,
  });

describe('fault: poison messages in the queue under load', () => {
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await startFaultStack({ env: { WORKER_BATCH_SIZE: '200' } });
  });
  afterAll(async () => {
    await stack?.destroy();
  });

  it('moves each poison message to the dead-letter stream and keeps storing the events behind it', async () => {
    const api = await stack.startApi();
    await stack.startWorker();
    const load = startLoad({
      targets: [api.url],
      apiKey: stack.adminKey,
      ratePerSecond: 600,
      maxInFlight: 200,
    });
    await eventually(
      async () => ((await stack.storedCount()) >= 500 ? true : undefined),
      30_000,
      'load stored',
    );

    // Appended straight to the stream, between the load's events, as a bug or a bad replay would.
    const poisonedAt = Date.now();
    const poison = [
      await stack.redisClient.xadd(stack.stream, '*', 'e', unstorable()),
      await stack.redisClient.xadd(stack.stream, '*', 'e', '{"not": "a queued event"'),
      await stack.redisClient.xadd(stack.stream, '*', 'e', unstorable()),
    ];
    const acceptedAfterPoison = load.snapshot().accepted;
    await eventually(
      async () =>
        (await stack.redisClient.xlen(`${stack.stream}:dead`)) === poison.length ? true : undefined,
      30_000,
      'the poison messages dead-lettered',
    );
    const deadLetteredMs = Date.now() - poisonedAt;
    // Events accepted after the poison are stored while the load goes on: nothing waits behind it.
    await eventually(
      async () => ((await stack.storedCount()) >= acceptedAfterPoison + 600 ? true : undefined),
      30_000,
      'events behind the poison stored',
    );

    const result = await load.stop();
    // Every call answered as expected, every accepted event stored once, no crash, the hash log verifies.
    const { delivery, verified } = await stack.expectExactlyOnce(result);

    const dead = await stack.redisClient.xrange(`${stack.stream}:dead`, '-', '+');
    const fields = dead.map(([, values]) => Object.fromEntries(chunk(values)));
    expect(fields.map((entry) => entry['original_id']).sort()).toEqual([...poison].sort());
    const reasons = fields.map((entry) => entry['reason'] ?? '');
    expect(reasons.filter((reason) => reason.startsWith('insert failed'))).toHaveLength(2);
    expect(reasons.filter((reason) => reason.startsWith('not JSON'))).toHaveLength(1);

    report('poison message', {
      accepted: result.accepted,
      stored: delivery.stored,
      missing: delivery.missing.length,
      duplicated: delivery.duplicated.length,
      deadLettered: dead.length,
      poisonToDeadLetterMs: deadLetteredMs,
      verify: verified.ran ? verified.code : verified.why,
    });
  });
});

function chunk(values: string[]): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < values.length; i += 2) pairs.push([values[i]!, values[i + 1]!]);
  return pairs;
}
