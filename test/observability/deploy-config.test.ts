import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import {
  DEPLOY,
  PROMETHEUS_INSTALL_HINT,
  PROMETHEUS_SYNTHETIC_SERIES,
  jobMatchersIn,
  locateTool,
  metricNamesIn,
  readPrometheusConfig,
  readYaml,
  ruleFilePaths,
  runTool,
  selectableSeries,
  type RuleFile,
} from './deploy-support.js';

/**
 * The monitoring we ship (deploy/prometheus, deploy/grafana) checked against the service as it
 * runs: its /metrics passes promtool's lint, the rules and config pass promtool, and every
 * metric a rule or dashboard panel selects is one the service exports.
 */

const promtool = locateTool('promtool', PROMETHEUS_INSTALL_HINT);

interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ refId?: string; expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

interface Dashboard {
  uid: string;
  title: string;
  description?: string;
  panels: Panel[];
}

/** Panels that show no query: layout rows and notes. */
const PANELS_WITHOUT_QUERIES = new Set(['row', 'text']);

const readDashboard = (): Dashboard => JSON.parse(readFileSync(DEPLOY.dashboard, 'utf8')) as Dashboard;

const flattenPanels = (panels: readonly Panel[]): Panel[] =>
  panels.flatMap((panel) => [panel, ...flattenPanels(panel.panels ?? [])]);

const dashboardExpressions = (): Array<{ where: string; expr: string }> =>
  flattenPanels(readDashboard().panels).flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      where: `panel "${panel.title}" target ${target.refId}`,
      expr: target.expr ?? '',
    })),
  );

const ruleExpressions = (): Array<{ where: string; expr: string }> =>
  ruleFilePaths().flatMap((file) =>
    readYaml<RuleFile>(file).groups.flatMap((group) =>
      group.rules.map((rule) => ({ where: `rule ${rule.alert ?? rule.record}`, expr: rule.expr })),
    ),
  );

describe('the service’s /metrics, as the shipped monitoring sees it', () => {
  let app: TestApp;
  let exposition: string;

  beforeAll(async () => {
    app = await startTestApp('embedded');
    // Traffic of every kind, so counters and histograms carry samples, not only HELP and TYPE.
    const post = (body: unknown, key: string) =>
      fetch(`${app.baseUrl}/log`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect(
      (await post({ session_id: 1, event_type: 'llm_query_sent', payload: { model: 'm' } }, app.keys.admin))
        .status,
    ).toBe(202);
    expect((await post({ session_id: 1, event_type: 'nope' }, app.keys.admin)).status).toBe(400);
    expect((await post({ session_id: 1, event_type: 'review_started' }, 'wrong-key')).status).toBe(401);
    const response = await fetch(`${app.baseUrl}/metrics`);
    expect(response.status).toBe(200);
    exposition = await response.text();
  });
  afterAll(async () => {
    await app?.stop();
  });

  it.skipIf(!promtool)(
    'passes `promtool check metrics`, apart from prom-client’s own default metrics',
    async () => {
      const result = await runTool(promtool!, ['check', 'metrics'], { input: exposition });
      const findings = `${result.stdout}${result.stderr}`
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '');
      // Exit 1 is a parse error; 3 is lint findings, which we then sort.
      expect(result.code, findings.join('\n')).not.toBe(1);
      expect(findings).toEqual([]);
      if (result.code !== 0) expect(result.code).toBe(3);
    },
  );

  it('exports every metric that an alert rule or dashboard panel selects', () => {
    const exported = selectableSeries(exposition);
    const expressions = [...ruleExpressions(), ...dashboardExpressions()];
    expect(expressions.length).toBeGreaterThan(10);
    const unknown = expressions.flatMap(({ where, expr }) =>
      metricNamesIn(expr)
        .filter((name) => !exported.has(name) && !PROMETHEUS_SYNTHETIC_SERIES.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('reading metric names out of PromQL', () => {
  it('keeps selected metrics and drops functions, labels, ranges, numbers and variables', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, route) (rate(request_duration_seconds_bucket{route!~"/metrics|x"}[$__rate_interval]))) ' +
          '/ on (job) group_left(instance) max without (instance) (queue_size offset 5m) > bool 1e3 ' +
          'or absent(up{job="auditgraph-worker"} == 1) unless sum(increase(a:b_total[1h30m]))',
      ).sort(),
    ).toEqual(['a:b_total', 'queue_size', 'request_duration_seconds_bucket', 'up']);
  });

  it('treats a histogram as its _bucket, _sum and _count series', () => {
    const exported = selectableSeries(
      '# HELP h x\n# TYPE h histogram\n# HELP c x\n# TYPE c counter\nc 1\n# TYPE g gauge\n',
    );
    expect([...exported].sort()).toEqual(['c', 'g', 'h_bucket', 'h_count', 'h_sum']);
  });
});

describe.skipIf(!promtool)('promtool on the shipped Prometheus files', () => {
  it('accepts the alert rules', async () => {
    const files = ruleFilePaths();
    expect(files.length).toBeGreaterThan(0);
    const result = await runTool(promtool!, ['check', 'rules', ...files]);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
  });

  it('accepts prometheus.yml (and the rule files it names)', async () => {
    const result = await runTool(promtool!, ['check', 'config', DEPLOY.prometheusConfig]);
    expect(result.code, `${result.stdout}${result.stderr}`).toBe(0);
  });
});

describe('the shipped alert rules and dashboard', () => {
  const jobs = readPrometheusConfig().scrape_configs.map((job) => job.job_name);

  it('alert on queue lag, dead letters, error rate and a worker being down', () => {
    const rules = ruleExpressions();
    const selecting = (metric: string) => rules.filter(({ expr }) => metricNamesIn(expr).includes(metric));
    expect(selecting('auditgraph_queue_lag_seconds')).not.toEqual([]);
    expect([
      ...selecting('auditgraph_dead_letters'),
      ...selecting('auditgraph_dead_lettered_total'),
    ]).not.toEqual([]);
    expect(selecting('api_requests_total').some(({ expr }) => expr.includes('5..'))).toBe(true);
    expect(selecting('up').some(({ expr }) => expr.includes('job="auditgraph-worker"'))).toBe(true);
  });

  it('link every alert to its section of docs/operations.md', () => {
    // GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen.
    const anchors = new Set(
      readFileSync(`${DEPLOY.root}docs/operations.md`, 'utf8')
        .split('\n')
        .filter((line) => /^#{1,6} /.test(line))
        .map((line) =>
          line
            .replace(/^#+ /, '')
            .trim()
            .toLowerCase()
            .replace(/[^\w\- ]/g, '')
            .replace(/ /g, '-'),
        ),
    );
    const rules = ruleFilePaths().flatMap((file) =>
      readYaml<RuleFile>(file).groups.flatMap((group) => group.rules.filter((rule) => rule.alert)),
    );
    const broken = rules
      .map((rule) => ({ alert: rule.alert, runbook: rule.annotations?.['runbook'] ?? '' }))
      .filter(({ runbook }) => {
        const [file, anchor = ''] = runbook.split('#');
        return file !== 'docs/operations.md' || !anchors.has(anchor);
      });
    expect(broken).toEqual([]);
  });

  it('select only job names that prometheus.yml scrapes', () => {
    const problems = [...ruleExpressions(), ...dashboardExpressions()].flatMap(({ where, expr }) =>
      jobMatchersIn(expr)
        .filter(({ op, value }) =>
          op === '=' ? !jobs.includes(value) : !jobs.some((job) => new RegExp(`^(?:${value})$`).test(job)),
        )
        .map(({ op, value }) => `${where}: job${op}"${value}"`),
    );
    expect(jobs).toEqual(expect.arrayContaining(['auditgraph-api', 'auditgraph-worker']));
    expect(problems).toEqual([]);
  });

  it('give every dashboard panel a query on the provisioned Prometheus datasource', () => {
    const datasources = readYaml<{ datasources: Array<{ uid: string; type: string }> }>(
      DEPLOY.grafanaDatasources,
    ).datasources;
    const prometheusUid = datasources.find((source) => source.type === 'prometheus')?.uid;
    expect(prometheusUid).toBeDefined();

    const dashboard = readDashboard();
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.title).not.toBe('');
    const panels = flattenPanels(dashboard.panels);
    const ids = panels.map((panel) => panel.id);
    expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);

    const queried = panels.filter((panel) => !PANELS_WITHOUT_QUERIES.has(panel.type));
    expect(queried.length).toBeGreaterThan(5);
    for (const panel of queried) {
      const where = `panel "${panel.title}"`;
      expect(panel.title, 'every panel has a title').toBeTruthy();
      expect(panel.datasource?.uid, where).toBe(prometheusUid);
      expect(panel.targets?.length, `${where} has targets`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr?.trim(), `${where} target ${target.refId}`).toBeTruthy();
        expect(target.datasource?.uid ?? prometheusUid, where).toBe(prometheusUid);
      }
    }
  });

  it('chart requests, latency, errors, queue depth and lag, persisted events and LLM queries', () => {
    const used = new Set(dashboardExpressions().flatMap(({ expr }) => metricNamesIn(expr)));
    for (const metric of [
      'api_requests_total',
      'request_duration_seconds_bucket',
      'queue_size',
      'auditgraph_queue_lag_seconds',
      'auditgraph_events_persisted_total',
      'log_events_total',
      'llm_queries_total',
      'auditgraph_dead_letters',
    ]) {
      expect(used, metric).toContain(metric);
    }
    // Tokens and cost are not Prometheus metrics; the dashboard says where they are.
    expect(readDashboard().description).toMatch(/analytics API/);
  });
});
