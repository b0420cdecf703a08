/** The ingest bench's results (as results.json holds them) and the report printed from them. */
import { fmtInt, indent, pct } from '../support/format.js';
import { median } from '../support/stats.js';
import { markdownTable } from '../support/table.js';
import { fmtCpu } from './log.js';
import type { Machine } from './machine.js';
import type { Options } from './options.js';
import type { HttpResult } from './phases/http.js';
import type { InstructionsResult } from './phases/instructions.js';
import type { PersistenceResult } from './phases/persistence.js';
import { renderProfile } from './profile.js';

export interface Results {
  startedAt: string;
  finishedAt?: string;
  mode: 'quick' | 'full';
  machine?: Machine;
  options: Omit<Options, 'out'> & { out: string };
  commands: string[];
  http?: HttpResult;
  instructions?: InstructionsResult;
  persistence: PersistenceResult[];
  error?: string;
}

export function render(results: Results): string {
  const out: string[] = [];
  const m = results.machine;
  out.push('');
  out.push(`auditgraph ingest benchmark (${results.mode} mode), ${results.startedAt}`);
  if (m) {
    out.push(`  nproc: ${m.nproc} (${m.cpuModel}), memory ${m.memoryGiB} GiB`);
    out.push(`  node ${m.node}; load tool: ${m.loadTool}; ${m.postgres}; Redis ${m.redis}`);
    out.push(
      `  postgres settings: ${Object.entries(m.postgresSettings)
        .map(([key, value]) => `${key}=${value}`)
        .join(' ')}`,
    );
  }
  const h = results.http;
  if (h) {
    out.push('');
    out.push(
      `1. HTTP path: POST /log (${h.bodyBytes}-byte JSON body), ${h.loadTool} ${h.threads} thread(s), ` +
        `${h.connections} connections, ${h.warmupS} s warm-up + ${h.durationS} s measured per target, ` +
        `${h.rounds.length} round(s), medians`,
    );
    const rows = (['bare', 'serve'] as const).map((side) => {
      const all = h.rounds.map((round) => round[side]);
      return [
        side === 'bare' ? 'bare node:http (read body, 202)' : 'auditgraph serve (auth+validate+XADD)',
        fmtInt(h[side].rps),
        h[side].p50Ms.toFixed(2),
        h[side].p99Ms.toFixed(2),
        String(all.reduce((sum, r) => sum + r.errors, 0)),
        all.map((r) => fmtCpu(r.cpu)).join(' / '),
      ];
    });
    out.push(
      markdownTable(['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'CPU (share of one core)'], rows),
    );
    out.push(`   ratio serve/bare: ${pct(h.ratio)}  (target >= 50%: ${h.pass ? 'PASS' : 'MISS'})`);
    // CPU time per request moves far less than req/s when other work shares the two cores.
    const cpuUs = (side: 'bare' | 'serve') =>
      median(h.rounds.map((round) => ((round[side].cpu.server ?? 0) * 1e6) / round[side].rps));
    out.push(
      `   server CPU per request (median of rounds): bare ${cpuUs('bare').toFixed(1)} µs, ` +
        `serve ${cpuUs('serve').toFixed(1)} µs; bare/serve ${pct(cpuUs('bare') / cpuUs('serve'))}`,
    );
    if (!h.valid) {
      out.push(
        '   INVALID: over 0.1% of the requests failed or were not 2xx; these figures do not measure ingest.',
      );
    }
    for (const round of h.rounds) {
      if (round.serve.streamEntries < round.serve.requests) {
        out.push(
          `   WARNING: stream held ${round.serve.streamEntries} entries for ${round.serve.requests} requests`,
        );
      }
    }
  }
  const i = results.instructions;
  if (i) {
    out.push('');
    out.push(
      `1b. Instructions per request (valgrind callgrind, user space only), counted over ${fmtInt(i.requests)} ` +
        `requests after ${fmtInt(i.warmupRequests)}: bare ${fmtInt(i.bare)}, serve ${fmtInt(i.serve)}; ` +
        `bare/serve ${pct(i.ratio)}`,
    );
  }
  if (results.persistence.length > 0) {
    out.push('');
    out.push(
      '2./3. Persistence: worker draining a pre-filled stream vs raw INSERT ... SELECT unnest(...) of the same rows',
    );
    out.push(
      markdownTable(
        [
          'scenario',
          'rows before',
          'events',
          'raw ev/s',
          'worker ev/s',
          'steady ev/s',
          'ratio',
          'target',
          'result',
        ],
        results.persistence.map((p) => [
          p.scenario === 'empty' ? '2. empty table' : '3. preloaded table',
          fmtInt(p.rowsBefore),
          fmtInt(p.events),
          fmtInt(p.raw.eventsPerSecond),
          fmtInt(p.worker.eventsPerSecond),
          fmtInt(p.worker.steadyEventsPerSecond),
          pct(p.ratio),
          `>=50%${p.targets.eventsPerSecond ? ` & >=${fmtInt(p.targets.eventsPerSecond)}/s` : ''}`,
          p.pass ? 'PASS' : 'MISS',
        ]),
      ),
    );
    for (const p of results.persistence) {
      out.push(
        `   ${p.scenario}: batch ${p.batchSize} (raw ${p.rawBatch}); raw ${p.raw.seconds.toFixed(1)} s [${fmtCpu(p.raw.cpu)}]; ` +
          `worker ${p.worker.seconds.toFixed(1)} s after a ${p.worker.startupSeconds.toFixed(1)} s start [${fmtCpu(p.worker.cpu)}]` +
          `${p.preloadSeconds ? `; preload ${p.preloadSeconds.toFixed(0)} s` : ''}; stream fill ${p.fillSeconds.toFixed(1)} s`,
      );
    }
    for (const p of results.persistence) {
      if (p.rounds.length < 2) continue;
      out.push(
        `   ${p.scenario}, ${p.rounds.length} rounds (worker / raw events/s, ratio): ` +
          p.rounds
            .map(
              (round) =>
                `${fmtInt(round.workerEventsPerSecond)} / ${fmtInt(round.rawEventsPerSecond)} ${pct(round.ratio)}`,
            )
            .join('; ') +
          `; the table shows the median ratio's round; median worker rate ${fmtInt(p.medianWorkerEventsPerSecond)}/s`,
      );
    }
    for (const p of results.persistence) {
      if (p.worker.problem) out.push(`   PROBLEM (${p.scenario}): ${p.worker.problem}`);
    }
    for (const p of results.persistence) {
      if (!p.breakdown) continue;
      const b = p.breakdown;
      out.push('');
      out.push(
        `   breakdown (${p.scenario}): worker code in-process, ${fmtInt(b.events)} events, ${b.batches} batches, ` +
          `${fmtInt(b.eventsPerSecond)} events/s`,
      );
      out.push(
        indent(
          markdownTable(
            ['step', 'ms/batch', 'share of wall', 'calls'],
            Object.entries(b.steps)
              .sort((a, c) => c[1].share - a[1].share)
              .map(([step, s]) => [step, s.msPerBatch.toFixed(2), pct(s.share), String(s.calls)]),
          ),
          3,
        ),
      );
      if (b.sqlShapes) {
        out.push(
          `   SQL shapes (${p.scenario}), into audit_events_raw, batch ${p.rawBatch}, fresh rows each:`,
        );
        out.push(
          indent(
            markdownTable(
              ['statement', 'ev/s', 'ms/batch'],
              b.sqlShapes.map((shape) => [
                shape.shape,
                fmtInt(shape.eventsPerSecond),
                shape.msPerBatch.toFixed(2),
              ]),
            ),
            3,
          ),
        );
      }
    }
  }
  if (h?.profile) out.push('', renderProfile('serve CPU profile (last HTTP round)', h.profile));
  for (const p of results.persistence) {
    if (p.profile) out.push('', renderProfile(`worker CPU profile (${p.scenario})`, p.profile));
  }
  const noisy: string[] = [];
  for (const round of h?.rounds ?? []) {
    for (const side of ['bare', 'serve'] as const) {
      if ((round[side].cpu.other ?? 0) > 0.25) noisy.push(`HTTP ${side} (${pct(round[side].cpu.other!)})`);
    }
  }
  for (const p of results.persistence) {
    if ((p.raw.cpu.other ?? 0) > 0.25) noisy.push(`${p.scenario} raw (${pct(p.raw.cpu.other!)})`);
    if ((p.worker.cpu.other ?? 0) > 0.25) noisy.push(`${p.scenario} worker (${pct(p.worker.cpu.other!)})`);
  }
  if (noisy.length > 0) {
    out.push('');
    out.push(
      `WARNING: other processes were busy during: ${noisy.join(', ')} of a core. Re-run on a quiet machine.`,
    );
  }
  out.push('');
  out.push('Commands run (cwd: repository root):');
  for (const command of results.commands) out.push(`  ${command}`);
  if (results.error) out.push('', `FAILED: ${results.error}`);
  return out.join('\n');
}
