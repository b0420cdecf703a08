import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoad, type Load } from '../support/fault-load.js';
import { eventually } from '../support/fault-services.js';
import { report, startFaultStack, type FaultStack, type WorkerProcess } from '../support/fault-stack.js';

const KILLS = 4;

describe('fault: the worker is SIGKILLed repeatedly under load', () => {
  let stack: FaultStack;
  beforeAll(async () => {
    stack = await startFaultStack({ env: { WORKER_BATCH_SIZE: '200' } });
  });
  afterAll(async () => {
    await stack?.destroy();
  });

  it('stores every accepted event exactly once after kill after kill, and the restarted worker catches up', async () => {
    const api = await stack.startApi();
    // A stable consumer name: the restarted worker resumes the batch the killed one held.
    const workerEnv = { WORKER_CONSUMER_NAME: 'fault-worker' };
    let worker: WorkerProcess = await stack.startWorker(workerEnv);
    const load: Load = startLoad({
      targets: [api.url],
      apiKey: stack.adminKey,
      ratePerSecond: 600,
      maxInFlight: 200,
    });

    const catchUps: number[] = [];
    const restarts: number[] = [];
    for (let kill = 0; kill < KILLS; kill += 1) {
      // Kill while the worker is busy: it has stored rows since it started.
      const before = await stack.storedCount();
      await eventually(
        async () => ((await stack.storedCount()) >= before + 400 ? true : undefined),
        30_000,
        'the worker storing rows',
      );
      worker.proc.kill('SIGKILL');
      expect(await worker.proc.exited).toBe('SIGKILL');
      const killedAt = Date.now();
      // Let a backlog build with no worker at all.
      const acceptedAtKill = load.snapshot().accepted;
      await eventually(
        async () => (load.snapshot().accepted >= acceptedAtKill + 500 ? true : undefined),
        30_000,
        'a backlog',
      );
      const backlog = load.snapshot().accepted;
      worker = await stack.startWorker(workerEnv);
      restarts.push(Date.now() - killedAt);
      const readyAt = Date.now();
      await eventually(
        async () => ((await stack.storedCount()) >= backlog ? true : undefined),
        60_000,
        'the restarted worker catching up',
      );
      catchUps.push(Date.now() - readyAt);
    }

    const result = await load.stop();
    // Every call answered as expected, every accepted event stored once, no crash, the hash log verifies.
    const { delivery, verified } = await stack.expectExactlyOnce(result);
    // Killing workers is invisible to callers: every request was answered 202 at once.
    expect(Object.keys(result.answers)).toEqual(['202']);
    expect(await stack.redisClient.xlen(`${stack.stream}:dead`)).toBe(0);

    report('worker SIGKILL', {
      kills: KILLS,
      accepted: result.accepted,
      stored: delivery.stored,
      missing: delivery.missing.length,
      duplicated: delivery.duplicated.length,
      killToReadyMs: restarts,
      readyToCaughtUpMs: catchUps,
      verify: verified.ran ? verified.code : verified.why,
    });
    worker.proc.kill('SIGTERM');
    expect(await worker.proc.exited).toBe(0);
  });
});
