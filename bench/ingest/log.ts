/** The ingest bench's progress lines (on stderr, timestamped) and the small figures they print. */
import { performance } from 'node:perf_hooks';

export const log = (message: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}`);

/** Seconds from `fromMs` to `toMs` (now), both from performance.now(). */
export const seconds = (fromMs: number, toMs = performance.now()) => (toMs - fromMs) / 1000;

/** "server 98%, wrk 40%, other 3%": each process's share of one core. */
export const fmtCpu = (cpu: Record<string, number>) =>
  Object.entries(cpu)
    .map(([label, share]) => `${label} ${(share * 100).toFixed(0)}%`)
    .join(', ');
