/** The query bench's report: the table printed, and results.json's content. */
import { markdownTable } from '../support/table.js';
import { DEEP_PAGE, type CaseResult } from './case.js';
import { SPAN_DAYS } from './events.js';
import { ms, round3, roundStats, type Stats } from './figures.js';
import type { Options } from './options.js';
import type { LoadMeta } from './phases/load.js';
import type { AlternativeResult } from './phases/measure.js';

export function printReport(input: {
  options: Options;
  loadInfo: LoadMeta;
  results: CaseResult[];
  alternatives: AlternativeResult[];
  agreement: string[];
}): void {
  const { options, loadInfo, results, alternatives, agreement } = input;
  const header = [
    'case',
    'API p50',
    'p95',
    'max',
    'in-proc p50',
    'p95',
    'bare SQL p50',
    'p95',
    'API÷SQL',
    'target p95',
    'met',
    'others',
  ];
  const rows = results.map((result) => [
    result.label + (result.contended ? ' (contended)' : ''),
    ms(result.api.p50),
    ms(result.api.p95),
    ms(result.api.max),
    ms(result.inProcess?.p50),
    ms(result.inProcess?.p95),
    ms(result.sql.p50),
    ms(result.sql.p95),
    `${result.ratio >= 10 ? result.ratio.toFixed(0) : result.ratio >= 0.1 ? result.ratio.toFixed(2) : result.ratio.toFixed(4)}×`,
    result.targetMs === null ? '—' : `< ${result.targetMs}`,
    result.met === null ? '—' : result.met ? 'yes' : 'NO',
    result.otherCores.toFixed(2),
  ]);
  console.log(
    `\nResults: ${loadInfo.events.toLocaleString('en-US')} events over ${SPAN_DAYS} days, ${options.samples} sequential requests per case ` +
      `after ${options.warmup} warm-up (live-SQL rows: ${options.slowSamples} runs after 1 warm-up); times in ms, client-side; ` +
      '"others": cores used by other processes on the machine meanwhile.\n',
  );
  console.log(markdownTable(header, rows));
  console.log('\nBare SQL for each case (pg, one connection, client-side time):');
  for (const result of results)
    console.log(`  ${result.label}:\n    ${result.sql.query.replace(/\n/g, '\n    ')}`);
  console.log('\nAlternatives, bare SQL (not what the service issues today):');
  console.log(
    markdownTable(
      ['query', 'p50', 'p95', 'max'],
      alternatives.map((alternative) => [
        alternative.label,
        ms(alternative.stats.p50),
        ms(alternative.stats.p95),
        ms(alternative.stats.max),
      ]),
    ),
  );
  console.log('\nRollups (API) against the live SQL, same window:');
  for (const line of agreement) console.log(`  ${line}`);
}

/** results.json: how it ran, on what, and every figure rounded to the microsecond. */
export function resultsJson(input: {
  startedAt: Date;
  options: Options;
  commands: { migrate: string; serve: string };
  machine: unknown;
  quiet: boolean;
  database: { name: string; load: LoadMeta; sizes: unknown };
  walk: Stats;
  results: CaseResult[];
  alternatives: AlternativeResult[];
  agreement: string[];
  plansFile: string | null;
}) {
  const { options, results, alternatives } = input;
  return {
    startedAt: input.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command: `npx tsx bench/query/run.ts ${process.argv.slice(2).join(' ')}`.trimEnd(),
    commands: input.commands,
    machine: input.machine,
    quiet: input.quiet,
    database: {
      name: input.database.name,
      kept: options.keepDb !== undefined,
      load: input.database.load,
      sizes: input.database.sizes,
    },
    method: {
      samples: options.samples,
      warmup: options.warmup,
      slowSamples: options.slowSamples,
      http: 'node:http, one keep-alive connection, sequential; time to the last byte of the body',
      inProcess:
        'createEventQueries / createAnalyticsService from src/ on a pool of 4, in the benchmark process',
      sql: 'pg.Client, one connection, parameterized (extended protocol), client-side time',
      interleaving: 'per sample: API, in-process, SQL (live-SQL rows: their runs after the API samples)',
    },
    cursorWalk: { pages: `2..${DEEP_PAGE}`, ...roundStats(input.walk) },
    cases: results.map((result) => ({
      ...result,
      api: roundStats(result.api),
      inProcess: result.inProcess ? roundStats(result.inProcess) : null,
      sql: { ...roundStats(result.sql), label: result.sql.label, query: result.sql.query },
      ratio: round3(result.ratio),
    })),
    alternatives: alternatives.map((alternative) => ({
      ...alternative,
      stats: roundStats(alternative.stats),
    })),
    analyticsAgreement: input.agreement,
    plansFile: input.plansFile,
  };
}
