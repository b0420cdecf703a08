/** Plans: auto_explain on the benchmark database only, one request per case, written to bench/query/plans.txt. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { ROOT, type Child } from '../../support/processes.js';
import type { Case } from '../case.js';
import { createClient } from '../client.js';
import { ms } from '../figures.js';
import { startServer, stopServer } from '../server.js';

const QUERY_BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function capturePlans(input: {
  admin: pg.Client;
  dbName: string;
  pgLog: string;
  env: NodeJS.ProcessEnv;
  port: number;
  adminKey: string;
  cases: Case[];
}): Promise<string | null> {
  const { admin, dbName, pgLog } = input;
  const logSize = async (): Promise<number | null> => {
    try {
      return Number(
        (await admin.query<{ size: string }>('SELECT size::text FROM pg_stat_file($1)', [pgLog])).rows[0]!
          .size,
      );
    } catch {
      return null;
    }
  };
  if ((await logSize()) === null) {
    console.warn(`!! cannot read ${pgLog} through pg_stat_file: skipping the plans (use --pg-log PATH)`);
    return null;
  }
  console.log(
    `\nplans: auto_explain on ${dbName} only (ALTER DATABASE … SET session_preload_libraries), one request per case…`,
  );
  for (const setting of [
    `session_preload_libraries = 'auto_explain'`,
    'auto_explain.log_min_duration = 0',
    'auto_explain.log_analyze = on',
    'auto_explain.log_buffers = on',
    'auto_explain.log_timing = on',
  ]) {
    await admin.query(`ALTER DATABASE "${dbName}" SET ${setting}`);
  }
  let server: Child | undefined;
  const sections: string[] = [
    `# Plans of the queries auditgraph serve issued for each case (auto_explain, log_analyze, buffers),`,
    `# captured ${new Date().toISOString()} on ${dbName}. The second of two identical requests is shown`,
    `# (the first warms the connection); readiness probes are left out.`,
    '',
  ];
  try {
    server = await startServer(input.env, input.port);
    const client = createClient(input.port, input.adminKey);
    for (const testCase of input.cases) {
      if (testCase.id === 'health') continue;
      const call = testCase.api(0);
      await client.request(call.method, call.path, call.body);
      await sleep(300);
      const before = (await logSize())!;
      const reply = await client.request(call.method, call.path, call.body);
      await sleep(500);
      const after = (await logSize())!;
      const text =
        after > before
          ? (
              await admin.query<{ text: string }>('SELECT pg_read_file($1, $2, $3) AS text', [
                pgLog,
                before,
                after - before,
              ])
            ).rows[0]!.text
          : '';
      const plans = extractPlans(text, dbName).filter((plan) => !/Query Text: SELECT 1\b/.test(plan));
      sections.push(
        `## ${testCase.label}  (${call.method} ${call.path}, HTTP ${reply.status} in ${ms(reply.ms)} ms with auto_explain on)`,
        '',
        ...(plans.length > 0 ? plans.map((plan) => `${plan}\n`) : ['(no plan logged)\n']),
      );
    }
    client.close();
  } finally {
    if (server) await stopServer(server);
    await admin.query(`ALTER DATABASE "${dbName}" RESET ALL`);
  }
  const file = path.join(QUERY_BENCH, 'plans.txt');
  writeFileSync(file, `${sections.join('\n')}\n`);
  return path.relative(ROOT, file);
}

/** The auto_explain messages of one database in a slice of the server log, each with its continuation lines. */
function extractPlans(log: string, dbName: string): string[] {
  const plans: string[] = [];
  let current: string[] | undefined;
  for (const line of log.split('\n')) {
    if (/^\d{4}-\d\d-\d\d /.test(line)) {
      if (current) plans.push(current.join('\n'));
      current =
        line.includes(`@${dbName} LOG:  duration:`) && line.includes('plan:')
          ? [line.replace(/^.*LOG:\s+/, '')]
          : undefined;
    } else if (current && line.trim() !== '') {
      current.push(line.replace(/^\t/, '  '));
    }
  }
  if (current) plans.push(current.join('\n'));
  return plans;
}
