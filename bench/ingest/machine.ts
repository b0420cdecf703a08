import { spawnSync } from 'node:child_process';
import { hostFacts, postgresFacts, redisVersion } from '../support/machine.js';
import type { Options } from './options.js';
import type { Resources } from './resources.js';

export interface Machine {
  nproc: string;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  loadTool: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  redis: string;
}

/** The settings that move write throughput, printed beside the figures. */
const POSTGRES_SETTINGS = [
  'shared_buffers',
  'synchronous_commit',
  'fsync',
  'full_page_writes',
  'wal_level',
  'max_wal_size',
  'checkpoint_timeout',
  'autovacuum',
];

export async function machineFacts(options: Options, resources: Resources): Promise<Machine> {
  const wrk = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
  const wrkVersion = `${wrk.stdout}${wrk.stderr}`
    .split('\n')[0]!
    .replace(/ Copyright.*$/, '')
    .trim();
  const host = hostFacts();
  const postgres = await postgresFacts(
    (text, params) => resources.admin.query(text, params),
    POSTGRES_SETTINGS,
  );
  return {
    nproc: String(host.nproc),
    cpuModel: host.cpuModel,
    memoryGiB: host.memoryGiB,
    node: host.node,
    loadTool: options.loadTool === 'wrk' ? wrkVersion : `node-load.ts (${process.version})`,
    postgres: postgres.version.split(' on ')[0]!,
    postgresSettings: Object.fromEntries(
      postgres.settings.map((row) => [
        row.name,
        row.unit === '8kB' ? `${(Number(row.setting) * 8) / 1024}MB` : `${row.setting}${row.unit ?? ''}`,
      ]),
    ),
    redis: await redisVersion(resources.redis),
  };
}
