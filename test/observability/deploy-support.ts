import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * Shared by the suites that check `deploy/` (Prometheus config, alert rules, Grafana) against
 * the service: where the shipped files are, the external tools they run, and a PromQL reader.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const DEPLOY = {
  root: ROOT,
  prometheusDir: path.join(ROOT, 'deploy/prometheus'),
  prometheusConfig: path.join(ROOT, 'deploy/prometheus/prometheus.yml'),
  grafanaDatasources: path.join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml'),
  dashboard: path.join(ROOT, 'deploy/grafana/dashboards/auditgraph.json'),
  compose: path.join(ROOT, 'docker-compose.yml'),
};

/** The parts of prometheus.yml the tests read and rewrite; the rest passes through untouched. */
export interface PrometheusConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs: Array<{ job_name: string } & Record<string, unknown>>;
  [key: string]: unknown;
}

export interface RuleFile {
  groups: Array<{
    name: string;
    rules: Array<{ alert?: string; record?: string; expr: string; annotations?: Record<string, string> }>;
  }>;
}

export function readYaml<T>(file: string): T {
  return parse(readFileSync(file, 'utf8')) as T;
}

export function readPrometheusConfig(): PrometheusConfig {
  return readYaml<PrometheusConfig>(DEPLOY.prometheusConfig);
}

/** The rule files prometheus.yml names, as absolute paths (Prometheus resolves them against its config). */
export function ruleFilePaths(config = readPrometheusConfig()): string[] {
  return (config.rule_files ?? []).map((file) => path.resolve(DEPLOY.prometheusDir, file));
}

/**
 * Finds an executable on PATH. When it is missing the suites that need it are skipped with a
 * loud warning, except with CI=true, where a missing tool fails the run.
 */
export function locateTool(name: string, installHint: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  if (process.env['CI'] === 'true')
    throw new Error(`${name} is not installed, and CI=true requires it: ${installHint}`);
  console.warn(`\n!!! ${name} is not installed: the suites that need it are SKIPPED (${installHint}). !!!\n`);
  return undefined;
}

export const PROMETHEUS_INSTALL_HINT = 'apt-get install -y --no-install-recommends prometheus';

export interface ToolResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, feeding it `input` on stdin; never rejects on a non-zero exit. */
export function runTool(
  file: string,
  args: readonly string[],
  options: { input?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/**
 * The series names a Prometheus text exposition lets PromQL select, from its `# TYPE` lines
 * (which list every registered metric, even one with no sample yet): a histogram `x` is
 * selected as `x_bucket`, `x_sum` and `x_count`, never as `x`.
 */
export function selectableSeries(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const match = /^# TYPE (\S+) (\S+)$/.exec(line.trim());
    if (!match) continue;
    const [, name = '', type] = match;
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

/** Series Prometheus writes itself for every target, which no /metrics exposes. */
export const PROMETHEUS_SYNTHETIC_SERIES = new Set(['up']);

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects. A small reader, not a parser: it drops string
 * literals, label matchers, ranges, grouping label lists, numbers, durations and Grafana
 * variables, then keeps the identifiers that are neither keywords nor called as functions.
 */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/(?<![\w:.])\.?\d[\w.]*/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, name = '', call] = match;
    if (call === undefined && !PROMQL_KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** The `job` values an expression matches on, as `=` values or `=~` patterns. */
export function jobMatchersIn(expr: string): Array<{ op: '=' | '=~'; value: string }> {
  return [...expr.matchAll(/\bjob\s*(=~|=)\s*"([^"]*)"/g)].map(([, op, value]) => ({
    op: op as '=' | '=~',
    value: value ?? '',
  }));
}
