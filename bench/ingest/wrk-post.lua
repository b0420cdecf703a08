-- wrk script for bench/ingest/run.ts: POSTs one JSON body on every request and,
-- when done, prints one machine-readable line (BENCH_JSON {...}) for the runner.
-- The body and the API key come from the environment (BENCH_BODY, BENCH_API_KEY).
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"session_id":1,"event_type":"review_started","payload":{}}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key ~= nil and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,' ..
    '"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"lat_mean_us":%.1f,"lat_p50_us":%d,' ..
    '"lat_p90_us":%d,"lat_p99_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
