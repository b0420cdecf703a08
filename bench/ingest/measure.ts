/**
 * Measuring on a shared machine: wait until it is quiet, measure again when
 * other processes took a share of it meanwhile, and tell which PostgreSQL
 * processes work for the bench's database.
 */
import type pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import { pct } from '../support/format.js';
import { machineCpuSeconds } from '../support/cpu.js';
import { log } from './log.js';

/**
 * The PostgreSQL processes working for one database (its backends, parallel
 * workers) and for everyone (checkpointer, background writer, WAL writer),
 * refreshed every 250 ms, so another database's load counts as "other".
 */
export async function postgresPidsOf(admin: pg.Pool, database: string) {
  let pids: number[] = [];
  const refresh = async () => {
    const result = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = $1 OR backend_type IN ('checkpointer', 'background writer', 'walwriter')`,
      [database],
    );
    pids = result.rows.map((row) => row.pid);
  };
  await refresh();
  const timer = setInterval(() => void refresh().catch(() => undefined), 250);
  return { pids: () => pids, stop: () => clearInterval(timer) };
}

/**
 * Waits until the machine is quiet (other processes using under `threshold` of
 * one core over a second) so a measurement does not share the two cores with,
 * say, a test suite. Gives up after `timeoutS` and says so.
 */
export async function waitForQuiet(timeoutS: number, threshold = 0.15): Promise<void> {
  if (timeoutS <= 0) return;
  const deadline = Date.now() + timeoutS * 1000;
  let warned = false;
  let quietFor = 0;
  for (;;) {
    const before = machineCpuSeconds().busy;
    await sleep(1000);
    const busy = machineCpuSeconds().busy - before;
    quietFor = busy < threshold ? quietFor + 1 : 0;
    if (quietFor >= 2) return;
    if (Date.now() > deadline) {
      log(`  the machine is still busy (${(busy * 100).toFixed(0)}% of a core); measuring anyway`);
      return;
    }
    if (!warned) {
      log(`  waiting for the machine to be quiet: other processes use ${(busy * 100).toFixed(0)}% of a core`);
      warned = true;
    }
  }
}

/**
 * Runs `measure`, and again (at most `retries` more times) while other processes on the machine
 * took over a quarter of a core during it; answers the last result.
 */
export async function measureQuietly<T extends { cpu: Record<string, number> }>(
  retries: number,
  measure: (attempt: number) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const result = await measure(attempt);
    const other = result.cpu.other ?? 0;
    if (other <= 0.25 || attempt > retries) return result;
    log(`  other processes used ${pct(other)} of a core meanwhile; measuring again`);
  }
}
