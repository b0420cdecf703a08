/**
 * Fallback load generator for bench/ingest/run.ts when `wrk` is not installed:
 * `connections` keep-alive sockets, each sending one request after the other
 * for `durationS` seconds. Prints the same `BENCH_JSON {...}` line as
 * wrk-post.lua. Slower than wrk (it costs more CPU per request), so only
 * compare figures taken with the same tool.
 *
 *   BENCH_BODY='{...}' BENCH_API_KEY=... node --import tsx bench/ingest/node-load.ts URL CONNECTIONS DURATION_S
 */
import http from 'node:http';

const [url = 'http://127.0.0.1:18080/log', connectionsArg = '64', durationArg = '10'] = process.argv.slice(2);
const connections = Number(connectionsArg);
const durationMs = Number(durationArg) * 1000;
const body = Buffer.from(
  process.env.BENCH_BODY ?? '{"session_id":1,"event_type":"review_started","payload":{}}',
);
const headers: Record<string, string | number> = {
  'content-type': 'application/json',
  'content-length': body.length,
};
if (process.env.BENCH_API_KEY) headers['x-api-key'] = process.env.BENCH_API_KEY;

const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const target = new URL(url);
// Latency histogram in 10 µs buckets up to 10 s; the rest land in the last bucket.
const BUCKET_US = 10;
const histogram = new Uint32Array(1_000_000);
let completed = 0;
let statusErrors = 0;
let otherErrors = 0;
let bytes = 0;
let latencySumUs = 0;
let latencyMaxUs = 0;

function once(): Promise<void> {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const request = http.request(
      { agent, host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers },
      (response) => {
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () => {
          const us = Number(process.hrtime.bigint() - started) / 1000;
          completed += 1;
          latencySumUs += us;
          if (us > latencyMaxUs) latencyMaxUs = us;
          histogram[Math.min(histogram.length - 1, Math.floor(us / BUCKET_US))]! += 1;
          if ((response.statusCode ?? 0) >= 400) statusErrors += 1;
          resolve();
        });
      },
    );
    request.on('error', () => {
      otherErrors += 1;
      resolve();
    });
    request.end(body);
  });
}

function percentile(p: number): number {
  const wanted = Math.ceil((completed * p) / 100);
  let seen = 0;
  for (let i = 0; i < histogram.length; i += 1) {
    seen += histogram[i]!;
    if (seen >= wanted) return (i + 1) * BUCKET_US;
  }
  return latencyMaxUs;
}

const startedAt = Date.now();
const deadline = startedAt + durationMs;
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (Date.now() < deadline) await once();
  }),
);
const elapsedUs = (Date.now() - startedAt) * 1000;
agent.destroy();
const result = {
  requests: completed,
  duration_us: elapsedUs,
  bytes,
  errors_connect: 0,
  errors_read: otherErrors,
  errors_write: 0,
  errors_status: statusErrors,
  errors_timeout: 0,
  lat_mean_us: completed ? latencySumUs / completed : 0,
  lat_p50_us: percentile(50),
  lat_p90_us: percentile(90),
  lat_p99_us: percentile(99),
  lat_max_us: Math.round(latencyMaxUs),
};
console.log(`BENCH_JSON ${JSON.stringify(result)}`);
