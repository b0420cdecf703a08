/**
 * 1. HTTP path: `POST /log` on `auditgraph serve` (auth, validation, enqueue
 * into Redis; no worker running) beside a bare `node:http` server that answers
 * 202 to the same POST, with the same load tool and connections, round by round.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../../bin/node-flags.mjs';
import { cpuMeter, type CpuMeter, type CpuTarget } from '../../support/cpu.js';
import { fmtInt } from '../../support/format.js';
import { HTTP_BODY, loadCommand, loadErrors, loadResultOf } from '../../support/load-tool.js';
import { freePort } from '../../support/ports.js';
import { BIN, childFailed, waitForHttp, type Child } from '../../support/processes.js';
import { median } from '../../support/stats.js';
import { fmtCpu, log } from '../log.js';
import { measureQuietly, waitForQuiet } from '../measure.js';
import type { Options } from '../options.js';
import { profileFlags, summarizeProfileDir, type ProfileSummary } from '../profile.js';
import type { Resources } from '../resources.js';
import { API_KEY, serveVars } from '../serve.js';

const INGEST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface LoadSummary {
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  requests: number;
  errors: number;
  non2xx: number;
  cpu: Record<string, number>;
}

export interface HttpResult {
  loadTool: string;
  connections: number;
  threads: number;
  warmupS: number;
  durationS: number;
  bodyBytes: number;
  rounds: Array<{ bare: LoadSummary; serve: LoadSummary & { streamEntries: number } }>;
  bare: { rps: number; p50Ms: number; p99Ms: number };
  serve: { rps: number; p50Ms: number; p99Ms: number };
  ratio: number;
  target: number;
  /** False when over 0.1% of the requests of a measured run failed or were not 2xx (e.g. 429 from a rate limit). */
  valid: boolean;
  pass: boolean;
  profile?: ProfileSummary;
}

/** `auditgraph serve`'s environment in the HTTP measurements: one port, its own stream, no limit in the way. */

async function runLoad(
  options: Options,
  resources: Resources,
  url: string,
  durationS: number,
  record: boolean,
  onStart?: (loadPid: number) => void,
) {
  const vars = { BENCH_BODY: HTTP_BODY, BENCH_API_KEY: API_KEY };
  const [file, args] = loadCommand(options.loadTool, {
    url,
    connections: options.connections,
    threads: options.threads,
    durationS,
  });
  const child = resources.startChild(`load(${url})`, file, args, vars, record);
  onStart?.(child.proc.pid!);
  const deadline = sleep((durationS + 60) * 1000).then(() => 'timeout' as const);
  const result = await Promise.race([child.exited, deadline]);
  if (result === 'timeout') {
    await resources.stop(child);
    throw new Error(`the load generator did not finish:\n${child.output.slice(-2000)}`);
  }
  resources.forget(child);
  const loadResult = loadResultOf(child.output);
  if (!loadResult) throw childFailed(child, 'printed no result');
  return { result: loadResult, pid: child.proc.pid! };
}

/** Measures, and measures again (twice at most) when other processes took more than a quarter of a core. */
async function measureTarget(
  options: Options,
  resources: Resources,
  url: string,
  server: Child,
  withRedis: boolean,
): Promise<LoadSummary> {
  const once = (): Promise<LoadSummary> =>
    measureTargetOnce().catch((error: unknown) => {
      // A load generator that cannot connect usually means the server died: say why.
      throw server.exitCode !== undefined ? childFailed(server, 'exited during the measurement') : error;
    });
  return measureQuietly(options.retries, once);

  async function measureTargetOnce(): Promise<LoadSummary> {
    const serverPid = server.proc.pid!;
    await waitForQuiet(options.quietTimeoutS);
    if (options.warmupS > 0) await runLoad(options, resources, url, options.warmupS, false);
    const redisPid = Number(/process_id:(\d+)/.exec(await resources.redis.info('server'))?.[1] ?? 0);
    let meter: CpuMeter | undefined;
    const { result } = await runLoad(options, resources, url, options.durationS, true, (loadPid) => {
      const targets: CpuTarget[] = [{ label: 'server', pids: () => [serverPid] }];
      targets.push({ label: options.loadTool === 'wrk' ? 'wrk' : 'node-load', pids: () => [loadPid] });
      if (withRedis) targets.push({ label: 'redis', pids: () => (redisPid ? [redisPid] : []) });
      meter = cpuMeter(targets);
    });
    const cpu = meter!.stop();
    return {
      rps: result.requests / (result.duration_us / 1e6),
      p50Ms: result.lat_p50_us / 1000,
      p90Ms: result.lat_p90_us / 1000,
      p99Ms: result.lat_p99_us / 1000,
      maxMs: result.lat_max_us / 1000,
      requests: result.requests,
      errors: loadErrors(result),
      non2xx: result.errors_status,
      cpu,
    };
  }
}

export async function httpPhase(options: Options, resources: Resources, runId: string): Promise<HttpResult> {
  const rounds: HttpResult['rounds'] = [];
  const dbName = `${runId}_http`;
  const url = await resources.createDatabase(dbName);
  let profile: ProfileSummary | undefined;
  try {
    for (let round = 1; round <= options.rounds; round += 1) {
      // Bare node:http first.
      const barePort = await freePort();
      const bare = resources.startChild(
        'bare-server',
        process.execPath,
        ['--import', 'tsx', path.join(INGEST, 'bare-server.ts')],
        {
          PORT: String(barePort),
          HOST: '127.0.0.1',
        },
      );
      let bareResult: LoadSummary;
      try {
        await waitForHttp(`http://127.0.0.1:${barePort}/`, { child: bare });
        log(`HTTP round ${round}/${options.rounds}: bare node:http on :${barePort}`);
        bareResult = await measureTarget(options, resources, `http://127.0.0.1:${barePort}/log`, bare, false);
        log(
          `  bare: ${fmtInt(bareResult.rps)} req/s, p99 ${bareResult.p99Ms.toFixed(2)} ms (${fmtCpu(bareResult.cpu)})`,
        );
      } finally {
        await resources.stop(bare);
      }

      // Then auditgraph serve, on a stream of its own.
      const stream = `${runId}:http:${round}`;
      resources.addStream(stream);
      const port = await freePort();
      const profileDir = path.join(INGEST, 'profiles', runId, `serve-${round}`);
      const serve = resources.startChild(
        'serve',
        process.execPath,
        [...NODE_FLAGS, ...profileFlags(options, profileDir), BIN, 'serve'],
        await serveVars(options, url, stream, port),
      );
      let serveResult: LoadSummary;
      try {
        await waitForHttp(`http://127.0.0.1:${port}/health/ready`, { child: serve });
        log(`HTTP round ${round}/${options.rounds}: auditgraph serve on :${port} (stream ${stream})`);
        serveResult = await measureTarget(options, resources, `http://127.0.0.1:${port}/log`, serve, true);
        log(
          `  serve: ${fmtInt(serveResult.rps)} req/s, p99 ${serveResult.p99Ms.toFixed(2)} ms (${fmtCpu(serveResult.cpu)})`,
        );
      } finally {
        await resources.stop(serve);
      }
      const streamEntries = await resources.redis.xlen(stream);
      await resources.deleteStream(stream);
      if (serveResult.non2xx > 0) log(`  WARNING: ${serveResult.non2xx} responses from serve were not 2xx`);
      rounds.push({ bare: bareResult, serve: { ...serveResult, streamEntries } });
      if (options.profile && round === options.rounds) profile = summarizeProfileDir(profileDir);
    }
  } finally {
    await resources.dropDatabase(dbName);
  }
  const pick = (side: 'bare' | 'serve') => ({
    rps: median(rounds.map((round) => round[side].rps)),
    p50Ms: median(rounds.map((round) => round[side].p50Ms)),
    p99Ms: median(rounds.map((round) => round[side].p99Ms)),
  });
  const bare = pick('bare');
  const serve = pick('serve');
  const ratio = serve.rps / bare.rps;
  const valid = rounds.every((round) =>
    [round.bare, round.serve].every((side) => side.errors <= side.requests * 0.001),
  );
  return {
    loadTool: options.loadTool,
    connections: options.connections,
    threads: options.threads,
    warmupS: options.warmupS,
    durationS: options.durationS,
    bodyBytes: Buffer.byteLength(HTTP_BODY),
    rounds,
    bare,
    serve,
    ratio,
    target: 0.5,
    valid,
    pass: valid && ratio >= 0.5,
    ...(profile ? { profile } : {}),
  };
}
