import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

/** Parses Prometheus text exposition into `name{labels}` → value. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('/metrics after known traffic', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded');
  });
  afterAll(async () => {
    await app?.stop();
  });

  const scrape = async () => {
    const response = await fetch(`${app.baseUrl}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return parseMetrics(await response.text());
  };
  const post = (body: unknown, key = app.keys.admin) =>
    fetch(`${app.baseUrl}/log`, {
      method: 'POST',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it("counts the spec's metrics and the pipeline's own, with bounded labels", async () => {
    for (const model of ['m-1', 'm-1', 'm-2']) {
      expect((await post({ session_id: 1, event_type: 'llm_query_sent', payload: { model } })).status).toBe(
        202,
      );
    }
    expect((await post({ session_id: 1, event_type: 'review_started' })).status).toBe(202);
    expect((await post({ session_id: 1, event_type: 'nope' })).status).toBe(400);
    expect((await post({ session_id: 1, event_type: 'review_started' }, 'wrong-key')).status).toBe(401);
    expect((await post({ session_id: 1, event_type: 'review_started' }, app.keys.readOnly)).status).toBe(403);

    const samples = await eventually(async () => {
      const current = await scrape();
      return current.get('auditgraph_events_persisted_total') === 4 ? current : undefined;
    });
    expect(samples.get('log_events_total{event_type="llm_query_sent"}')).toBe(3);
    expect(samples.get('log_events_total{event_type="review_started"}')).toBe(1);
    expect(samples.get('llm_queries_total{model="m-1"}')).toBe(2);
    expect(samples.get('llm_queries_total{model="m-2"}')).toBe(1);
    expect(samples.get('api_requests_total{method="POST",route="/log",status="202"}')).toBe(4);
    expect(samples.get('api_requests_total{method="POST",route="/log",status="400"}')).toBe(1);
    expect(samples.get('api_requests_total{method="POST",route="/log",status="401"}')).toBe(1);
    expect(samples.get('auditgraph_auth_failures_total{reason="unknown"}')).toBe(1);
    expect(samples.get('auditgraph_auth_failures_total{reason="scope"}')).toBe(1);
    expect(samples.get('request_duration_seconds_count{method="POST",route="/log"}')).toBe(7);
    expect(samples.get('queue_size')).toBe(0);
    expect(samples.get('auditgraph_queue_lag_seconds')).toBe(0);
    expect(samples.get('auditgraph_dead_letters')).toBe(0);
    expect(samples.get('auditgraph_persist_batch_size_sum')).toBe(4);
  });

  it('labels unknown paths as one route, so scanners cannot grow the label set', async () => {
    for (const path of ['/a', '/b', '/c/d']) await fetch(`${app.baseUrl}${path}`);
    const samples = await scrape();
    expect(samples.get('api_requests_total{method="GET",route="unmatched",status="404"}')).toBe(3);
    expect([...samples.keys()].some((key) => key.includes('route="/a"'))).toBe(false);
  });
});

describe.skipIf(!(postgresAvailable && redisAvailable))('/metrics of a worker-only process', () => {
  it('serves the worker’s metrics and health on METRICS_PORT, without the API routes', async () => {
    const app = await startTestApp('postgres+redis', { role: 'worker', env: { METRICS_PORT: '0' } });
    try {
      const metrics = await fetch(`${app.baseUrl}/metrics`);
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(text).toContain('auditgraph_events_persisted_total 0');
      expect(text).toContain('queue_size 0');
      expect((await fetch(`${app.baseUrl}/health/ready`)).status).toBe(200);
      expect((await fetch(`${app.baseUrl}/log`, { method: 'POST' })).status).toBe(404);
    } finally {
      await app.stop();
    }
  });
});

describe('/metrics behind METRICS_TOKEN', () => {
  it('answers only a Bearer token equal to METRICS_TOKEN when one is set', async () => {
    const token = 'metrics-token-0123456789';
    const app = await startTestApp('embedded', { env: { METRICS_TOKEN: token } });
    try {
      const anonymous = await fetch(`${app.baseUrl}/metrics`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.text()).not.toContain(token);
      expect(
        (await fetch(`${app.baseUrl}/metrics`, { headers: { authorization: 'Bearer wrong-token' } })).status,
      ).toBe(401);
      const allowed = await fetch(`${app.baseUrl}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toContain('queue_size');
      expect((await fetch(`${app.baseUrl}/health`)).status).toBe(200);
    } finally {
      await app.stop();
    }
  });
});
