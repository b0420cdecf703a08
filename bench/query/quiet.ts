/**
 * A quiet machine for the query bench: no bench/ingest/run.ts running, and the
 * rest of the machine (everything but this bench's processes) using at most
 * --max-other-cpu cores.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSecondsOf, machineCpuSeconds } from '../support/cpu.js';
import type { Options } from './options.js';

export const INGEST_BENCH = 'bench/ingest/run.ts';

export function ingestBenchRunning(): boolean {
  const result = spawnSync('pgrep', ['-f', INGEST_BENCH], { encoding: 'utf8' });
  return result.status === 0 && result.stdout.trim() !== '';
}

/** CPU seconds of each of `pids` that still runs. */
function processSeconds(pids: readonly number[]): Map<number, number> {
  const used = new Map<number, number>();
  for (const pid of pids) {
    const seconds = cpuSecondsOf(pid);
    if (seconds !== undefined) used.set(pid, seconds);
  }
  return used;
}

/**
 * Measures how many cores the rest of the machine (everything but `ownPids`) used
 * between `start()` and `stop()`: other engineers' tests, builds, benchmarks. Own
 * processes are listed again at `stop()`, so connections opened meanwhile count as own.
 */
export function otherCpu(ownPids: () => Promise<number[]>) {
  let machine = machineCpuSeconds();
  let own = new Map<number, number>();
  return {
    async start() {
      own = processSeconds(await ownPids());
      machine = machineCpuSeconds();
    },
    /** Cores used by other processes on average since start(). */
    async stop(): Promise<number> {
      const now = machineCpuSeconds();
      const pids = new Set([...own.keys(), ...(await ownPids())]);
      const ownNow = processSeconds([...pids]);
      let ownDelta = 0;
      for (const [pid, seconds] of ownNow) ownDelta += Math.max(0, seconds - (own.get(pid) ?? 0));
      const elapsed = (now.total - machine.total) / os.availableParallelism();
      return elapsed <= 0 ? 0 : Math.max(0, (now.busy - machine.busy - ownDelta) / elapsed);
    },
  };
}
export type OtherCpu = ReturnType<typeof otherCpu>;

/** Once a wait timed out, later ones do not wait again (they still report what they see). */
let gaveUpWaiting = false;

/**
 * Waits until the ingest benchmark is not running and the rest of the machine has been
 * using at most `maxOtherCores` for 2 s (while this benchmark is idle); false if that
 * did not happen within `timeoutS`.
 */
export async function waitQuiet(options: Options, cpu: OtherCpu | undefined, why: string): Promise<boolean> {
  const deadline = Date.now() + (gaveUpWaiting ? 0 : options.quietTimeoutS * 1000);
  let announced = '';
  const announce = (what: string) => {
    if (announced !== what) console.log(`   waiting before ${why}: ${what}`);
    announced = what;
  };
  for (;;) {
    const ingest = ingestBenchRunning();
    let others = 0;
    if (!ingest && cpu) {
      await cpu.start();
      await sleep(2000);
      others = await cpu.stop();
    }
    if (!ingest && others <= options.maxOtherCores) {
      if (announced !== '') {
        console.log('   quiet now; settling for 5 s');
        await sleep(5000);
      }
      return true;
    }
    if (Date.now() >= deadline) {
      if (!gaveUpWaiting) {
        console.warn(
          `!! still not quiet after ${options.quietTimeoutS} s (${ingest ? `${INGEST_BENCH} running` : `other processes using ${others.toFixed(2)} cores`}): ` +
            'measuring anyway (results marked contended)',
        );
      }
      gaveUpWaiting = true;
      return false;
    }
    if (ingest) {
      announce(`${INGEST_BENCH} is running (polling every 30 s, up to ${options.quietTimeoutS} s)`);
      await sleep(30_000);
    } else {
      announce(`other processes use > ${options.maxOtherCores} cores (polling every 15 s)`);
      await sleep(13_000);
    }
  }
}
