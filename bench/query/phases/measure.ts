/**
 * The cases measured: API, in-process and bare SQL, interleaved sample by sample,
 * with what else the machine ran meanwhile; then the bare-SQL alternatives.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { alternativeQueries, runStatements } from '../alternatives.js';
import { json, type Case, type CaseResult } from '../case.js';
import type { Client } from '../client.js';
import { ms, round3, stats, type Stats } from '../figures.js';
import type { Options } from '../options.js';
import { INGEST_BENCH, ingestBenchRunning, waitQuiet, type OtherCpu } from '../quiet.js';

export function printRow(result: CaseResult): void {
  console.log(
    `  ${result.label.padEnd(58)} API p50 ${ms(result.api.p50).padStart(6)} p95 ${ms(result.api.p95).padStart(6)} max ${ms(result.api.max).padStart(6)}` +
      ` | in-proc p50 ${ms(result.inProcess?.p50).padStart(6)} | SQL p50 ${ms(result.sql.p50).padStart(7)} p95 ${ms(result.sql.p95).padStart(7)}` +
      (result.met === null ? '' : result.met ? '  ok' : '  MISSED'),
  );
}

export async function measureCase(
  testCase: Case,
  client: Client,
  sql: pg.Client,
  options: Options,
  cpu: OtherCpu,
): Promise<Omit<CaseResult, 'contended' | 'attempts'>> {
  const callApi = async (sample: number): Promise<number> => {
    const call = testCase.api(sample);
    const reply = await client.request(call.method, call.path, call.body);
    if (reply.status !== 200)
      throw new Error(`${testCase.label}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`);
    testCase.check(json(reply.body), sample);
    return reply.ms;
  };
  const callInProcess = async (sample: number): Promise<number | undefined> => {
    if (!testCase.inProcess) return undefined;
    const started = performance.now();
    await testCase.inProcess(sample);
    return performance.now() - started;
  };
  const callSql = async (sample: number): Promise<number> => {
    const { statements } = testCase.sql.call(sample);
    const started = performance.now();
    for (const statement of statements) await sql.query(statement.text, statement.params);
    return performance.now() - started;
  };

  const apiTimes: number[] = [];
  const inProcessTimes: number[] = [];
  const sqlTimes: number[] = [];
  const slow = testCase.sql.slow === true;
  for (let sample = 0; sample < options.warmup + options.samples; sample += 1) {
    const timed = sample >= options.warmup;
    if (sample === options.warmup) await cpu.start();
    const api = await callApi(sample);
    const inProcess = await callInProcess(sample);
    if (timed) {
      apiTimes.push(api);
      if (inProcess !== undefined) inProcessTimes.push(inProcess);
    }
    if (!slow) {
      const bare = await callSql(sample);
      if (timed) sqlTimes.push(bare);
    }
  }
  // The slow SQL's parallel workers come and go: the other processes' share covers the part before it.
  const otherCores = await cpu.stop();
  if (slow) {
    await callSql(0);
    for (let run = 0; run < options.slowSamples; run += 1) sqlTimes.push(await callSql(run));
  }
  const api = stats(apiTimes);
  const sqlStats = stats(sqlTimes);
  const targetMs = testCase.targetMs ?? null;
  return {
    id: testCase.id,
    label: testCase.label,
    targetMs,
    api,
    inProcess: inProcessTimes.length > 0 ? stats(inProcessTimes) : null,
    sql: { ...sqlStats, label: testCase.sql.label, query: testCase.sql.text },
    ratio: api.p50 / sqlStats.p50,
    met: targetMs === null ? null : api.p95 < targetMs,
    otherCores: round3(otherCores),
  };
}

/**
 * Every case in turn, each after the machine is quiet; a case during which the ingest bench ran
 * or other processes used more than --max-other-cpu is measured again (up to 3 times), then
 * marked contended. `quiet` is false when one was.
 */
export async function measureCases(
  cases: Case[],
  client: Client,
  sql: pg.Client,
  options: Options,
  cpu: OtherCpu,
): Promise<{ results: CaseResult[]; quiet: boolean }> {
  const results: CaseResult[] = [];
  let quiet = true;
  for (const testCase of cases) {
    let result: CaseResult | undefined;
    for (let attempt = 1; attempt <= 3 && result === undefined; attempt += 1) {
      const quietBefore = await waitQuiet(options, cpu, testCase.label);
      const measured = await measureCase(testCase, client, sql, options, cpu);
      const ingest = ingestBenchRunning();
      const contended = ingest || measured.otherCores > options.maxOtherCores;
      if (quietBefore && contended && attempt < 3) {
        console.warn(
          `!! ${ingest ? `${INGEST_BENCH} started` : `other processes used ${measured.otherCores.toFixed(2)} cores`} ` +
            `during "${testCase.label}": measuring it again`,
        );
        continue;
      }
      if (contended) quiet = false;
      result = { ...measured, contended, attempts: attempt };
    }
    results.push(result!);
    printRow(result!);
  }
  return { results, quiet };
}

export interface AlternativeResult {
  id: string;
  label: string;
  query: string;
  stats: Stats;
}

/** The alternatives the service could issue, bare, each after a quiet moment. */
export async function measureAlternatives(
  deepSeq: string,
  sql: pg.Client,
  options: Options,
  cpu: OtherCpu,
): Promise<AlternativeResult[]> {
  const alternatives: AlternativeResult[] = [];
  for (const alternative of alternativeQueries(deepSeq)) {
    await waitQuiet(options, cpu, alternative.label);
    for (let i = 0; i < options.warmup; i += 1) await runStatements(sql, alternative.statements);
    const times: number[] = [];
    for (let i = 0; i < options.samples; i += 1) {
      const started = performance.now();
      await runStatements(sql, alternative.statements);
      times.push(performance.now() - started);
    }
    alternatives.push({
      id: alternative.id,
      label: alternative.label,
      query: alternative.statements.map((statement) => statement.text.replace(/\s+/g, ' ')).join('; '),
      stats: stats(times),
    });
  }
  return alternatives;
}
