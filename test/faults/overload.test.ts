import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percentile, startLoad, type LoadResult } from '../support/fault-load.js';
import { eventually } from '../support/fault-services.js';
import { report, rssMiB, startFaultStack, type FaultStack } from '../support/fault-stack.js';

const OVERLOAD_MS = Number(process.env['FAULT_OVERLOAD_MS'] ?? 60_000);
const QUEUE_MAX_LENGTH = 5_000;
/** A second caller's own key limit (per minute): its flood is mostly answered 429. */
const LIMITED_KEY_PER_MINUTE = 600;

describe('fault: offered load far beyond capacity for 60 s', () => {
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await startFaultStack({
      env: {
        QUEUE_MAX_LENGTH: String(QUEUE_MAX_LENGTH),
        // Tiny batches make the worker the slowest stage (a few hundred events a second here),
        // so the queue reaches its high-water mark and the API must refuse what it cannot queue.
        WORKER_BATCH_SIZE: '5',
      },
    });
  });
  afterAll(async () => {
    await stack?.destroy();
  });

  it('refuses the excess with 429/503, keeps memory and accepted latency bounded, crashes nothing and loses nothing', async () => {
    const [api, limitedKey] = await Promise.all([
      stack.startApi(),
      stack.createKey([
        '--name',
        'flooder',
        '--scopes',
        'ingest',
        '--rate-limit',
        String(LIMITED_KEY_PER_MINUTE),
      ]),
    ]);
    const rssAtStart = await rssMiB(api.proc.child.pid!);
    // Open loop at 20,000 events a second with up to 128 in flight: far past the API's CPU and
    // the worker, so the queue fills (503). A second caller floods past its key's limit (429).
    // No retries: each event gets one answer.
    const load = startLoad({
      targets: [api.url],
      apiKey: stack.adminKey,
      ratePerSecond: 20_000,
      maxInFlight: 128,
      retry: false,
    });
    const limited = startLoad({
      targets: [api.url],
      apiKey: limitedKey,
      ratePerSecond: 2_000,
      maxInFlight: 16,
      retry: false,
      firstSequence: 1_000_000_000,
    });
    const rssSamples: number[] = [];
    let redisMaxBytes = 0;
    const sampler = setInterval(() => {
      void rssMiB(api.proc.child.pid!).then((rss) => rssSamples.push(rss));
      void stack.redisClient
        .info('memory')
        .then(
          (info) => (redisMaxBytes = Math.max(redisMaxBytes, Number(/used_memory:(\d+)/.exec(info)?.[1]))),
        );
    }, 1000);
    // The worker starts once the queue is full, however slow a loaded machine makes the API: the
    // excess is then refused (503) on any machine, rather than only where the API outpaces the worker.
    const overloadStartedAt = Date.now();
    await eventually(
      async () => ((await stack.redisClient.xlen(stack.stream)) >= QUEUE_MAX_LENGTH ? true : undefined),
      OVERLOAD_MS * 3,
      'the queue at its high-water mark',
      200,
    );
    const queueFullMs = Date.now() - overloadStartedAt;
    const worker = await stack.startWorker();
    // Then the rest of the overload (at least a quarter of it) with the worker draining.
    const rest = Math.max(OVERLOAD_MS / 4, OVERLOAD_MS - (Date.now() - overloadStartedAt));
    await new Promise((resolve) => setTimeout(resolve, rest));
    const [result, limitedResult] = await Promise.all([load.stop(15_000), limited.stop(15_000)]);
    clearInterval(sampler);
    const rssAtEnd = await rssMiB(api.proc.child.pid!);
    const overloadEndedAt = Date.now();
    const backlog = await stack.redisClient.xlen(stack.stream);

    const delivery = await stack.settle(merge(result, limitedResult), 120_000);
    const drainedMs = Date.now() - overloadEndedAt;

    expect(stack.crashes()).toEqual([]);
    const verified = await stack.verify();
    const rssMax = Math.max(...rssSamples);
    // No runaway growth while the overload lasts: the last third peaks at most 100 MiB above the
    // first third (V8 grows its heap lazily under load; the soak bench watches longer runs).
    const third = Math.floor(rssSamples.length / 3);
    const rssFirstThirdMax = Math.max(...rssSamples.slice(0, third));
    const rssLastThirdMax = Math.max(...rssSamples.slice(-third));
    const acceptedP99 = percentile(result.acceptedLatencies, 99);
    const seconds = result.durationMs / 1000;
    report('overload', {
      overloadMs: OVERLOAD_MS,
      startToQueueFullMs: queueFullMs,
      offeredPerSecond: Math.round(Object.values(result.answers).reduce((a, b) => a + b, 0) / seconds),
      acceptedPerSecond: Math.round(result.accepted / seconds),
      answers: result.answers,
      limitedKeyAnswers: limitedResult.answers,
      acceptedP50Ms: Math.round(percentile(result.acceptedLatencies, 50) * 10) / 10,
      acceptedP99Ms: Math.round(acceptedP99 * 10) / 10,
      acceptedMaxMs: Math.round(percentile(result.acceptedLatencies, 100)),
      refusalP99Ms: Math.round(percentile(result.refusalLatencies, 99) * 10) / 10,
      apiRssMiB: {
        start: Math.round(rssAtStart),
        firstThirdMax: Math.round(rssFirstThirdMax),
        lastThirdMax: Math.round(rssLastThirdMax),
        max: Math.round(rssMax),
        end: Math.round(rssAtEnd),
      },
      redisMaxMiB: Math.round(redisMaxBytes / 1024 / 1024),
      backlogAtEnd: backlog,
      endToDrainedMs: drainedMs,
      stored: delivery.stored,
      missing: delivery.missing.length,
      duplicated: delivery.duplicated.length,
      verify: verified.ran ? verified.code : verified.why,
    });
    // Nothing crashed.
    expect(api.proc.child.exitCode).toBeNull();
    expect(worker.proc.child.exitCode).toBeNull();
    expect((await fetch(`${api.url}/health/ready`)).status).toBe(200);
    // The excess was refused, both ways, with Retry-After; nothing else went wrong.
    expect(result.unexpected).toEqual([]);
    expect(limitedResult.unexpected).toEqual([]);
    expect(Object.keys(result.answers).sort()).toEqual(['202', '503 QUEUE_FULL']);
    expect(limitedResult.answers['429']).toBeGreaterThan(limitedResult.accepted);
    expect(result.refusalsWithoutRetryAfter + limitedResult.refusalsWithoutRetryAfter).toBe(0);
    // Bounded: the queue at its high-water mark, the API's memory, accepted latency.
    expect(backlog).toBeLessThanOrEqual(QUEUE_MAX_LENGTH);
    expect(redisMaxBytes).toBeLessThan(64 * 1024 * 1024);
    expect(rssLastThirdMax).toBeLessThan(rssFirstThirdMax + 100);
    expect(rssMax).toBeLessThan(512);
    // With 128 requests in flight, latency is in-flight ÷ throughput (Little's law): 0.1–0.3 s at
    // p50 here (reported above, not asserted: a loaded machine stretches it). Bounded means no
    // request waits on an unbounded buffer: no timeouts at all, checked with the answers above.
    // Every 202 stored exactly once; nothing refused was stored.
    expect(delivery).toMatchObject({ missing: [], duplicated: [], unexpected: [], storedButRefused: [] });
    expect(delivery.stored).toBe(result.accepted + limitedResult.accepted);

    if (verified.ran) expect(verified.code, verified.output).toBe(0);
  });
});

/** Both callers' events, for one delivery check over the table. */
function merge(
  a: LoadResult,
  b: LoadResult,
): Pick<LoadResult, 'acceptedIds' | 'attemptedIds' | 'refusedOnlyIds'> {
  return {
    acceptedIds: new Map([...a.acceptedIds, ...b.acceptedIds]),
    attemptedIds: new Map([...a.attemptedIds, ...b.attemptedIds]),
    refusedOnlyIds: new Set([...a.refusedOnlyIds, ...b.refusedOnlyIds]),
  };
}
