/** Facts about the machine a bench ran on, printed with its figures and kept in its results. */
import os from 'node:os';

/** This host: cores available to the process (as `nproc` counts them), CPU model, memory, Node. */
export function hostFacts() {
  return {
    nproc: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  };
}

/** The 1, 5 and 15 minute load averages, e.g. "0.52 1.04 0.98". */
export const loadAverage = (): string =>
  os
    .loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

type Query = <Row extends object>(text: string, params?: unknown[]) => Promise<{ rows: Row[] }>;

/** The server's `version()` and the named settings, as pg_settings holds them (unit apart). */
export async function postgresFacts(
  query: Query,
  settingNames: readonly string[],
): Promise<{ version: string; settings: Array<{ name: string; setting: string; unit: string | null }> }> {
  const version = (await query<{ version: string }>('SELECT version()')).rows[0]!.version;
  const settings = await query<{ name: string; setting: string; unit: string | null }>(
    'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)',
    [settingNames],
  );
  return { version, settings: settings.rows };
}

/** The version a Redis server reports, from `INFO server`. */
export async function redisVersion(redis: { info(section: 'server'): Promise<string> }): Promise<string> {
  return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
}
