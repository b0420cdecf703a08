/**
 * Ingest benchmark: how close does auditgraph come to what this machine can do?
 *
 *   1. HTTP path: `POST /log` on `auditgraph serve` (auth, validation, enqueue
 *      into Redis; no worker running) beside a bare `node:http` server that
 *      answers 202 to the same POST, with the same load tool and connections.
 *   2. Persistence: `auditgraph worker` draining a pre-filled stream into an
 *      empty `audit_events`, beside a raw `INSERT ... SELECT unnest(...)` of the
 *      same rows into a copy of the table (`LIKE audit_events INCLUDING ALL`)
 *      from one Node process on one connection.
 *   3. The same with both tables already holding `--preload` rows (5,000,000).
 *   With `--only ...,instructions`: the user-space instructions each HTTP target
 *   spends on a request, counted by valgrind (callgrind), which no other load on
 *   the machine moves.
 *
 * Run: `npx tsx bench/ingest/run.ts [--quick] [--help]`. Prints a table and
 * writes bench/ingest/results.json. Every database, stream and process it makes
 * is removed at the end, also on failure or Ctrl-C.
 *
 * This file reads the options and runs the phases in turn; each phase is in
 * phases/, what they share (resources, measuring, the report) beside this file.
 */
import { randomBytes } from 'node:crypto';
import { writeResults } from '../support/results.js';
import { log } from './log.js';
import { machineFacts } from './machine.js';
import { parseOptions } from './options.js';
import { httpPhase } from './phases/http.js';
import { instructionsPhase } from './phases/instructions.js';
import { persistencePhase } from './phases/persistence.js';
import { render, type Results } from './report.js';
import { createResources, rel } from './resources.js';

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const runId = `ag_bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const resources = createResources(options);
  const results: Results = {
    startedAt: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    options: { ...options, out: rel(options.out) },
    commands: resources.commands,
    persistence: [],
  };

  // A second signal within 5 s is the same Ctrl-C or kill relayed by npx/tsx: cleaning up continues.
  let interruptedAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedAt !== undefined) {
      if (Date.now() - interruptedAt > 5000) process.exit(130);
      return;
    }
    interruptedAt = Date.now();
    log(`${signal}: cleaning up`);
    void resources.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let code = 0;
  try {
    await resources.redis.connect();
    results.machine = await machineFacts(options, resources);
    log(
      `run ${runId}: nproc ${results.machine.nproc}, node ${process.version}, phases ${options.phases.join(',')}`,
    );
    if (options.phases.includes('http')) results.http = await httpPhase(options, resources, runId);
    if (options.phases.includes('instructions'))
      results.instructions = await instructionsPhase(options, resources, runId);
    for (const scenario of ['empty', 'preloaded'] as const) {
      if (options.phases.includes(scenario))
        results.persistence.push(await persistencePhase(options, resources, runId, scenario));
    }
  } catch (error) {
    results.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    code = 1;
  } finally {
    await resources.cleanup();
    results.finishedAt = new Date().toISOString();
    await resources.close();
  }
  console.log(render(results));
  writeResults(options.out, results);
  console.log(`\nResults written to ${rel(options.out)}`);
  return code;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
