import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { eventually, freePort, startTestApp, type TestApp } from '../support/app.js';
import {
  createTestDatabase,
  postgresAvailable,
  REDIS_URL,
  redisAvailable,
  uniqueStream,
} from '../support/services.js';
import {
  PROMETHEUS_INSTALL_HINT,
  locateTool,
  readPrometheusConfig,
  readYaml,
  ruleFilePaths,
  type PrometheusConfig,
  type RuleFile,
} from './deploy-support.js';

/**
 * A real Prometheus on the shipped deploy/prometheus/prometheus.yml (same jobs, same rules; only
 * the targets and intervals rewritten) scraping an API and a worker that share PostgreSQL and
 * Redis: what the API counts and the worker persists reads back through PromQL, the alert
 * rules load and evaluate, an event set aside raises the dead-letter alert, and a stopped worker
 * raises the worker-down alerts.
 */

const prometheusBinary = locateTool('prometheus', PROMETHEUS_INSTALL_HINT);

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

interface ApiAnswer<T> {
  status: 'success' | 'error';
  data: T;
  error?: string;
}

interface RuleState {
  name: string;
  type: 'alerting' | 'recording';
  health: 'ok' | 'err' | 'unknown';
  lastError?: string;
}

interface AlertState {
  labels: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
}

/**
 * The shipped config with each job's service discovery replaced by one static target, scrape and
 * rule intervals of 1 s, and rule files by absolute path. Everything else passes through as shipped.
 */
function rewriteForTest(shipped: PrometheusConfig, targets: Record<string, string>): PrometheusConfig {
  const shippedJobs = shipped.scrape_configs.map((job) => job.job_name).sort();
  expect(shippedJobs, 'the test has a target for each shipped job').toEqual(Object.keys(targets).sort());
  return {
    ...shipped,
    global: { ...shipped.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: ruleFilePaths(shipped),
    scrape_configs: shipped.scrape_configs.map((job) => {
      const kept = Object.fromEntries(
        Object.entries(job).filter(
          ([key]) => !key.endsWith('_sd_configs') && !['scrape_interval', 'scrape_timeout'].includes(key),
        ),
      );
      return { ...kept, job_name: job.job_name, static_configs: [{ targets: [targets[job.job_name]] }] };
    }),
  };
}

/** Starts Prometheus and resolves once it is ready; `stop()` ends it and waits for its exit. */
async function startPrometheus(binary: string, configFile: string, dataDir: string, port: number) {
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let hasExited = false;
  void exited.then(() => (hasExited = true));

  const stop = async () => {
    if (hasExited) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(killer);
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  try {
    await eventually(
      async () => {
        if (hasExited) throw new Error(`prometheus exited before it was ready:\n${output}`);
        return (await fetch(`${baseUrl}/-/ready`).catch(() => undefined))?.ok ? true : undefined;
      },
      15_000,
      'Prometheus to be ready',
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { baseUrl, stop, output: () => output };
}

describe.skipIf(!(prometheusBinary && postgresAvailable && redisAvailable))(
  'Prometheus on the shipped config, scraping an API and a worker',
  () => {
    const cleanups: Array<() => Promise<void>> = [];
    const onCleanup = (cleanup: () => Promise<void>) => void cleanups.unshift(cleanup);
    let api: TestApp;
    let worker: TestApp;
    let workerStopped: Promise<void> | undefined;
    /** A test stops the worker early; the cleanup must not stop it twice. */
    const stopWorker = () => (workerStopped ??= worker.stop());
    let prometheus: Awaited<ReturnType<typeof startPrometheus>>;
    const stream = uniqueStream('prometheus');

    const prometheusApi = async <T>(pathAndQuery: string): Promise<T> => {
      const response = await fetch(`${prometheus.baseUrl}/api/v1/${pathAndQuery}`);
      const answer = (await response.json()) as ApiAnswer<T>;
      if (answer.status !== 'success') throw new Error(`Prometheus API ${pathAndQuery}: ${answer.error}`);
      return answer.data;
    };
    const query = async (promql: string): Promise<Sample[]> =>
      (
        await prometheusApi<{ resultType: string; result: Sample[] }>(
          `query?query=${encodeURIComponent(promql)}`,
        )
      ).result;
    /** Polls `promql` until `accept` holds for its result; a timeout names the last result. */
    const queryUntil = async (promql: string, accept: (samples: Sample[]) => boolean) => {
      let last: Sample[] = [];
      try {
        return await eventually(
          async () => {
            last = await query(promql);
            return accept(last) ? last : undefined;
          },
          20_000,
          `Prometheus to answer ${promql} as expected`,
        );
      } catch (error) {
        throw new Error(
          `${(error as Error).message}; last answer: ${JSON.stringify(last)}\n${await processState()}`,
        );
      }
    };
    /** What the API and the worker report themselves, for a failure's message. */
    const processState = async () => {
      const lines = [];
      for (const [name, app] of [
        ['api', api],
        ['worker', worker],
      ] as const) {
        const text = await fetch(`${app.baseUrl}/metrics`)
          .then((response) => response.text())
          .catch((error: unknown) => `unreachable: ${String(error)}`);
        const own = text.split('\n').filter((line) => /^(auditgraph_|queue_size|log_events)/.test(line));
        lines.push(`${name} /metrics:`, ...own.map((line) => `  ${line}`));
      }
      const deadLetters = await worker.running.backends.queue.listDeadLetters(3).catch(() => []);
      lines.push('dead letters:', ...deadLetters.map((letter) => `  ${letter.reason}`));
      return lines.join('\n');
    };
    const valueOf = (samples: Sample[]) => Number(samples[0]?.value[1]);

    beforeAll(async () => {
      const database = await createTestDatabase();
      onCleanup(() => database.drop());
      // One database and stream for both processes, as in a deployment. Rate limits count per key
      // id in the shared Redis, where other suites' and benchmarks' traffic lands too: not tested here.
      const shared = {
        DATABASE_URL: database.url,
        QUEUE_STREAM: stream,
        RATE_LIMIT_PER_MINUTE: '10000000',
      };
      api = await startTestApp('postgres+redis', { role: 'serve', env: shared });
      onCleanup(() => api.stop());
      worker = await startTestApp('postgres+redis', {
        role: 'worker',
        env: { ...shared, METRICS_PORT: '0' },
      });
      onCleanup(stopWorker);

      const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-prometheus-'));
      onCleanup(() => rm(dir, { recursive: true, force: true }));
      const port = await freePort();
      const config = rewriteForTest(readPrometheusConfig(), {
        'auditgraph-api': new URL(api.baseUrl).host,
        'auditgraph-worker': new URL(worker.baseUrl).host,
        prometheus: `127.0.0.1:${port}`,
      });
      const configFile = path.join(dir, 'prometheus.yml');
      await writeFile(configFile, stringify(config));
      prometheus = await startPrometheus(prometheusBinary!, configFile, path.join(dir, 'data'), port);
      onCleanup(() => prometheus.stop());
      // Prometheus applies discovered targets on a 5 s tick, so the first scrapes come a few seconds in.
      await eventually(
        async () => {
          const { activeTargets } = await prometheusApi<{ activeTargets: Array<{ health: string }> }>(
            'targets',
          );
          return activeTargets.length === 3 && activeTargets.every((t) => t.health === 'up')
            ? true
            : undefined;
        },
        20_000,
        'every target to be scraped',
      );
    });

    afterAll(async () => {
      for (const cleanup of cleanups) await cleanup();
    });

    it('reads back what the API accepted and the worker persisted', async () => {
      const events = [
        ...Array.from({ length: 3 }, () => ({ session_id: 7, event_type: 'review_started' })),
        ...Array.from({ length: 2 }, () => ({
          session_id: 7,
          event_type: 'llm_query_sent',
          payload: { model: 'prom-test' },
        })),
      ];
      const response = await fetch(`${api.baseUrl}/log`, {
        method: 'POST',
        headers: { 'x-api-key': api.keys.admin, 'content-type': 'application/json' },
        body: JSON.stringify(events),
      });
      expect(response.status).toBe(202);

      const byType = await queryUntil(
        'sum by (event_type) (log_events_total{job="auditgraph-api"})',
        (samples) => samples.length === 2,
      );
      expect(Object.fromEntries(byType.map((s) => [s.metric['event_type'], Number(s.value[1])]))).toEqual({
        review_started: 3,
        llm_query_sent: 2,
      });
      await queryUntil(
        'sum(auditgraph_events_persisted_total{job="auditgraph-worker"})',
        (samples) => valueOf(samples) === 5,
      );
      expect(valueOf(await query('sum(llm_queries_total{job="auditgraph-api", model="prom-test"})'))).toBe(2);

      const { activeTargets } = await prometheusApi<{
        activeTargets: Array<{ labels: Record<string, string>; health: string }>;
      }>('targets?state=active');
      expect(
        Object.fromEntries(activeTargets.map((target) => [target.labels['job'], target.health])),
      ).toEqual({ 'auditgraph-api': 'up', 'auditgraph-worker': 'up', prometheus: 'up' });
    });

    it('loads every shipped alert rule and evaluates each without error', async () => {
      const shipped = ruleFilePaths()
        .flatMap((file) => readYaml<RuleFile>(file).groups)
        .flatMap((group) => group.rules.map((rule) => rule.alert ?? rule.record))
        .sort();
      const rules = await eventually(
        async () => {
          const { groups } = await prometheusApi<{ groups: Array<{ rules: RuleState[] }> }>('rules');
          const all = groups.flatMap((group) => group.rules);
          return all.length > 0 && all.every((rule) => rule.health !== 'unknown') ? all : undefined;
        },
        15_000,
        'every rule to be evaluated once',
      );
      expect(rules.map((rule) => rule.name).sort()).toEqual(shipped);
      expect(rules.filter((rule) => rule.health !== 'ok')).toEqual([]);
      // Rules evaluated before the first scrapes saw no `up` and set the absent() alerts pending;
      // the first evaluation after them clears every alert.
      await eventually(
        async () => {
          const { alerts } = await prometheusApi<{ alerts: AlertState[] }>('alerts');
          return alerts.length === 0 ? true : undefined;
        },
        10_000,
        'no alert to be active while the API and the worker are up',
      );
    });

    /** Active alerts by name: their state. */
    const activeAlerts = async () => {
      const { alerts } = await prometheusApi<{ alerts: AlertState[] }>('alerts');
      return Object.fromEntries(alerts.map((alert) => [alert.labels['alertname'], alert.state]));
    };

    it('raises the dead-letter alert when a worker sets an event aside', async () => {
      const redis = new Redis(REDIS_URL);
      try {
        await redis.xadd(stream, '*', 'e', 'not an event');
      } finally {
        redis.disconnect();
      }
      await eventually(
        async () => ((await activeAlerts())['AuditgraphDeadLetters'] === 'firing' ? true : undefined),
        15_000,
        'AuditgraphDeadLetters to fire',
      );
    });

    it('raises the worker-down alerts when the worker stops', async () => {
      await stopWorker();
      const states = await eventually(
        async () => {
          const current = await activeAlerts();
          return current['AuditgraphWorkerDown'] && current['AuditgraphNoWorkers'] ? current : undefined;
        },
        15_000,
        'the worker-down alerts',
      );
      // Pending: both wait 2 minutes before firing, longer than this test runs.
      expect(states).toMatchObject({ AuditgraphWorkerDown: 'pending', AuditgraphNoWorkers: 'pending' });
      expect(states).not.toHaveProperty('AuditgraphApiDown');
    });
  },
);
