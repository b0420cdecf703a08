import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/observability/metrics.js';

const sample = async (metrics: ReturnType<typeof createMetrics>, series: string) => {
  const line = (await metrics.registry.metrics()).split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('counters counted on the hot path (tally)', () => {
  it('show every count at each scrape, once, beside counts made through prom-client', async () => {
    const metrics = createMetrics();
    const series = 'log_events_total{event_type="review_started"}';
    const child = metrics.logEvents.tally({ event_type: 'review_started' });
    child.inc();
    child.inc();
    metrics.logEvents.tally({ event_type: 'review_started' }).inc();
    expect(await sample(metrics, series)).toBe(3);
    expect(await sample(metrics, series)).toBe(3);
    child.inc();
    metrics.logEvents.inc({ event_type: 'review_started' });
    expect(await sample(metrics, series)).toBe(5);
    expect((await metrics.logEvents.get()).values).toEqual([
      { labels: { event_type: 'review_started' }, value: 5 },
    ]);
  });

  it('keeps label sets apart', async () => {
    const metrics = createMetrics();
    metrics.apiRequests.tally({ method: 'POST', route: '/log', status: '202' }).inc();
    metrics.apiRequests.tally({ method: 'POST', route: '/log', status: '400' }).inc();
    metrics.apiRequests.tally({ method: 'POST', route: '/log', status: '400' }).inc();
    expect(await sample(metrics, 'api_requests_total{method="POST",route="/log",status="202"}')).toBe(1);
    expect(await sample(metrics, 'api_requests_total{method="POST",route="/log",status="400"}')).toBe(2);
  });
});
