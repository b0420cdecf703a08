import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { percentile, startLoad } from '../support/fault-load.js';
import { eventually } from '../support/fault-services.js';
import { report, startFaultStack, type ApiProcess, type FaultStack } from '../support/fault-stack.js';

const KILLS = 2;
const isNetworkError = (kind: string) => !/^\d/.test(kind);

describe('fault: an API process is SIGKILLed under load', () => {
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await startFaultStack();
  });
  afterAll(async () => {
    await stack?.destroy();
  });

  it('loses nothing and duplicates nothing when clients retry with their event_id on another replica', async () => {
    const apis: ApiProcess[] = [await stack.startApi(), await stack.startApi()];
    await stack.startWorker();
    // Many requests in flight, so a kill catches some between the append and the answer.
    const load = startLoad({
      targets: apis.map((api) => api.url),
      apiKey: stack.adminKey,
      ratePerSecond: 500,
      maxInFlight: 300,
    });

    const downMs: number[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      const acceptedBefore = load.snapshot().accepted;
      await eventually(
        async () => (load.snapshot().accepted >= acceptedBefore + 1000 ? true : undefined),
        30_000,
        'load flowing',
      );
      const victim = apis[kill % 2]!;
      victim.proc.kill('SIGKILL');
      expect(await victim.proc.exited).toBe('SIGKILL');
      const killedAt = Date.now();
      // The replica comes back on its port, as an orchestrator would restart it.
      apis[kill % 2] = await stack.startApi(victim.port);
      downMs.push(Date.now() - killedAt);
    }
    const acceptedBefore = load.snapshot().accepted;
    await eventually(
      async () => (load.snapshot().accepted >= acceptedBefore + 1000 ? true : undefined),
      30_000,
      'load flowing to the restarted replica',
    );

    const result = await load.stop();
    // Every call answered as expected, every accepted event stored once, no crash, the hash log verifies.
    const { delivery, verified } = await stack.expectExactlyOnce(result);
    const networkErrors = Object.entries(result.answers)
      .filter(([kind]) => isNetworkError(kind))
      .reduce((sum, [, count]) => sum + count, 0);
    // The kills were felt: requests failed mid-flight and were sent again with their event_id.
    expect(networkErrors).toBeGreaterThan(0);
    expect(result.retriedEventLatencies.length).toBeGreaterThan(0);

    report('API SIGKILL', {
      kills: KILLS,
      accepted: result.accepted,
      stored: delivery.stored,
      missing: delivery.missing.length,
      duplicated: delivery.duplicated.length,
      answers: result.answers,
      retriedEvents: result.retriedEventLatencies.length,
      retriedEventP99Ms: Math.round(percentile(result.retriedEventLatencies, 99)),
      retriedEventMaxMs: Math.round(percentile(result.retriedEventLatencies, 100)),
      killToReplicaReadyMs: downMs,
      verify: verified.ran ? verified.code : verified.why,
    });
  });
});
