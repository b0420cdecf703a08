/**
 * The HTTP load generators benches share: wrk with bench/ingest/wrk-post.lua,
 * or bench/ingest/node-load.ts where wrk is not installed. Both POST the body
 * in BENCH_BODY with the key in BENCH_API_KEY, and print one `BENCH_JSON {...}` line.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from './processes.js';

const INGEST = path.join(ROOT, 'bench/ingest');

export type LoadTool = 'wrk' | 'node';

/** The `POST /log` body the HTTP benches send (225 bytes): a review_started event as a client would. */
export const HTTP_BODY = JSON.stringify({
  session_id: 123456,
  event_type: 'review_started',
  payload: {
    code_language: 'python',
    file_count: 12,
    repo: 'github.com/example/auditgraph',
    commit: '9f3c2a7b1e4d5f6a8b9c0d1e2f3a4b5c6d7e8f90',
    user: 'reviewer@example.com',
  },
});

/** What one run of the load tool measured, as both tools print it. */
export interface LoadResult {
  requests: number;
  duration_us: number;
  bytes: number;
  errors_connect: number;
  errors_read: number;
  errors_write: number;
  errors_status: number;
  errors_timeout: number;
  lat_mean_us: number;
  lat_p50_us: number;
  lat_p90_us: number;
  lat_p99_us: number;
  lat_max_us: number;
}

export const wrkInstalled = (): boolean =>
  spawnSync('wrk', ['--version'], { encoding: 'utf8' }).error === undefined;

/** The command (file, arguments) that loads `url` for `durationS` seconds. */
export function loadCommand(
  tool: LoadTool,
  load: { url: string; connections: number; threads: number; durationS: number },
): [string, string[]] {
  return tool === 'wrk'
    ? [
        'wrk',
        [
          '-t',
          String(load.threads),
          '-c',
          String(load.connections),
          '-d',
          `${load.durationS}s`,
          '--latency',
          '-s',
          path.join(INGEST, 'wrk-post.lua'),
          load.url,
        ],
      ]
    : [
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(INGEST, 'node-load.ts'),
          load.url,
          String(load.connections),
          String(load.durationS),
        ],
      ];
}

/** The result line in a load tool's output; undefined when it printed none. */
export function loadResultOf(output: string): LoadResult | undefined {
  const line = output.split('\n').find((text) => text.startsWith('BENCH_JSON '));
  return line ? (JSON.parse(line.slice('BENCH_JSON '.length)) as LoadResult) : undefined;
}

/** Connect, read, write, status and timeout errors together. */
export const loadErrors = (result: LoadResult): number =>
  result.errors_connect +
  result.errors_read +
  result.errors_write +
  result.errors_status +
  result.errors_timeout;
