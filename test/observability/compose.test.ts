import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  DEPLOY,
  locateTool,
  readPrometheusConfig,
  readYaml,
  runTool,
  type PrometheusConfig,
} from './deploy-support.js';

/**
 * docker-compose.yml is valid, and its parts agree with each other: Prometheus's service
 * discovery names and ports are the compose services' and ports, the mounted config is the one
 * the tests run, Redis keeps an append-only file, workers publish no host port and the API's
 * host ports can be ranges, so both scale.
 */

const dockerCompose = locateTool(
  'docker-compose',
  'apt-get install -y --no-install-recommends docker-compose',
);

/** The variables docker-compose.yml requires (`${NAME:?…}`), with placeholder values. */
const REQUIRED_ENV = { ADMIN_API_KEY: 'placeholder-key', POSTGRES_PASSWORD: 'placeholder' };

type Port = string | { published?: string | number; target: number };

interface Service {
  command?: string[] | string;
  environment?: Record<string, string | number>;
  ports?: Port[];
  expose?: Array<string | number>;
  volumes?: Array<string | { source?: string; target: string }>;
  stop_grace_period?: string;
}

const composeConfig = async (env: Record<string, string> = {}) => {
  const result = await runTool(dockerCompose!, ['-f', DEPLOY.compose, 'config'], {
    env: { ...REQUIRED_ENV, ...env },
  });
  expect(result.code, result.stderr).toBe(0);
  return parse(result.stdout) as { services: Record<string, Service> };
};

/** `published → target` of each port, whether docker-compose wrote it long or short. */
const portsOf = (service: Service | undefined) =>
  (service?.ports ?? []).map((port) => {
    if (typeof port !== 'string') return { published: String(port.published ?? ''), target: port.target };
    const parts = port.replace(/\/\w+$/, '').split(':');
    return { published: parts.at(-2) ?? '', target: Number(parts.at(-1)) };
  });

/** Host path → container path of each bind mount. */
const mountsOf = (service: Service | undefined) =>
  new Map(
    (service?.volumes ?? []).map((volume) =>
      typeof volume === 'string'
        ? [volume.split(':')[0] ?? '', volume.split(':')[1] ?? '']
        : [volume.source ?? '', volume.target],
    ),
  );

const seconds = (duration: string | undefined) => {
  const match = /^(\d+)(ms|s|m)$/.exec(duration ?? '');
  if (!match) return Number.NaN;
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60 }[match[2] as 'ms' | 's' | 'm'];
};

describe.skipIf(!dockerCompose)('docker-compose.yml', () => {
  /** The file as docker-compose reads it, with merges resolved and the defaults interpolated. */
  let services: Record<string, Service>;
  beforeAll(async () => {
    ({ services } = await composeConfig());
  });

  it('passes `docker-compose config -q`', async () => {
    const result = await runTool(dockerCompose!, ['-f', DEPLOY.compose, 'config', '-q'], {
      env: REQUIRED_ENV,
    });
    expect(result.code, result.stderr).toBe(0);
  });

  it('refuses to start without ADMIN_API_KEY and POSTGRES_PASSWORD', async () => {
    const result = await runTool(dockerCompose!, ['-f', DEPLOY.compose, 'config', '-q'], {
      env: { ADMIN_API_KEY: '', POSTGRES_PASSWORD: '' },
    });
    expect(result.code).not.toBe(0);
  });

  it('runs PostgreSQL, Redis with an append-only file, the API, workers, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual([
      'api',
      'grafana',
      'postgres',
      'prometheus',
      'redis',
      'worker',
    ]);
    const redis = [services['redis']?.command ?? []].flat().join(' ');
    expect(redis).toMatch(/--appendonly yes/);
    expect([...mountsOf(services['redis']).values()]).toContain('/data');
    expect([services['api']?.command].flat()).toEqual(['serve']);
    expect([services['worker']?.command].flat()).toEqual(['worker']);
  });

  it('scales: workers publish no host port, and the API takes host port ranges', async () => {
    expect(portsOf(services['worker'])).toEqual([]);
    expect(portsOf(services['api'])).toEqual([
      { published: '8001', target: 8001 },
      { published: '8002', target: 8002 },
    ]);
    const scaled = await composeConfig({ API_PORTS: '8101-8104', QUERY_PORTS: '8201-8204' });
    expect(portsOf(scaled.services['api'])).toEqual([
      { published: '8101-8104', target: 8001 },
      { published: '8201-8204', target: 8002 },
    ]);
  });

  it('lets a stopping process drain before Docker kills it', () => {
    for (const name of ['api', 'worker']) {
      const service = services[name];
      const drainSeconds = Number(service?.environment?.['SHUTDOWN_TIMEOUT_MS']) / 1000;
      expect(seconds(service?.stop_grace_period), name).toBeGreaterThan(drainSeconds);
    }
  });

  it('gives Prometheus the shipped config, whose service discovery finds the compose services', () => {
    const prometheusMounts = mountsOf(services['prometheus']);
    expect(prometheusMounts.get(path.join(DEPLOY.root, 'deploy/prometheus'))).toBe('/etc/prometheus');
    expect([services['prometheus']?.command].flat()).toContain(
      '--config.file=/etc/prometheus/prometheus.yml',
    );

    const discovered = (readPrometheusConfig() as PrometheusConfig).scrape_configs.flatMap((job) =>
      ((job['dns_sd_configs'] ?? []) as Array<{ names: string[]; port: number }>).flatMap((sd) =>
        sd.names.map((name) => ({ job: job.job_name, name, port: sd.port })),
      ),
    );
    expect(discovered.map(({ job }) => job).sort()).toEqual(['auditgraph-api', 'auditgraph-worker']);
    const containerPort: Record<string, number> = {
      api: Number(services['api']?.environment?.['PRODUCER_PORT'] ?? 8001),
      worker: Number(services['worker']?.environment?.['METRICS_PORT'] ?? 9464),
    };
    for (const { name, port } of discovered) {
      expect(Object.keys(services), `${name} is a compose service`).toContain(name);
      expect(port, `port scraped on ${name}`).toBe(containerPort[name]);
    }
  });

  it('gives Grafana the provisioned datasource and dashboards', () => {
    const mounts = mountsOf(services['grafana']);
    expect(mounts.get(path.join(DEPLOY.root, 'deploy/grafana/provisioning'))).toBe(
      '/etc/grafana/provisioning',
    );
    const dashboardsMount = mounts.get(path.join(DEPLOY.root, 'deploy/grafana/dashboards'));
    const providers = readYaml<{ providers: Array<{ options: { path: string } }> }>(
      path.join(DEPLOY.root, 'deploy/grafana/provisioning/dashboards/auditgraph.yml'),
    ).providers;
    expect(providers.map((provider) => provider.options.path)).toEqual([dashboardsMount]);
    const datasources = readYaml<{ datasources: Array<{ url: string }> }>(
      DEPLOY.grafanaDatasources,
    ).datasources;
    expect(datasources.map((source) => new URL(source.url).hostname)).toEqual(['prometheus']);
  });
});
