/**
 * Soak: ingest, queries and (when the live feed exists) subscriptions together
 * for a long time, against a PostgreSQL cluster and a Redis (append-only,
 * fsync always) that it starts for itself, as the fault suite does. Prints
 * throughput, latencies, process memory at start and end, and the lost and
 * duplicated counts; exits 1 when anything was lost or duplicated or memory
 * grew past the bound.
 *
 *   npx tsx bench/soak/run.ts [--minutes 10] [--rate 300] [--queries 20] [--max-growth-mib 64]
 *
 * Memory is sampled after a one-minute warm-up (or a tenth of the run, if
 * shorter) and at the end; "growth" is end minus start, per process.
 */
import { parseArgs } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { percentile, startLoad } from '../../test/support/fault-load.js';
import { rssMiB, startFaultStack } from '../../test/support/fault-stack.js';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '300' },
    queries: { type: 'string', default: '20' },
    'max-growth-mib': { type: 'string', default: '64' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('npx tsx bench/soak/run.ts [--minutes 10] [--rate 300] [--queries 20] [--max-growth-mib 64]');
  process.exit(0);
}
const durationMs = Number(args.minutes) * 60_000;
const ratePerSecond = Number(args.rate);
const queriesPerSecond = Number(args.queries);
const maxGrowthMiB = Number(args['max-growth-mib']);
const warmupMs = Math.min(60_000, durationMs / 10);

const stack = await startFaultStack();
const stopSignal = () => {
  void stack.destroy().finally(() => process.exit(130));
};
process.once('SIGINT', stopSignal);
process.once('SIGTERM', stopSignal);

try {
  const api = await stack.startApi();
  const worker = await stack.startWorker();
  const pids = { api: api.proc.child.pid!, worker: worker.proc.child.pid! };

  const feed = subscribe(api.url, stack.adminKey);
  const load = startLoad({ targets: [api.url], apiKey: stack.adminKey, ratePerSecond, maxInFlight: 200 });
  const queries = runQueries(api.url, stack.adminKey, queriesPerSecond);

  await sleep(warmupMs);
  const memoryStart = { api: await rssMiB(pids.api), worker: await rssMiB(pids.worker) };
  const startedAt = Date.now();
  let lastReport = 0;
  while (Date.now() - startedAt < durationMs - warmupMs) {
    await sleep(1000);
    if (Date.now() - lastReport >= 60_000) {
      lastReport = Date.now();
      const snapshot = load.snapshot();
      console.log(
        `${Math.round((Date.now() - startedAt + warmupMs) / 1000)} s: accepted ${snapshot.accepted}, stored ${await stack.storedCount()}, ` +
          `queries ${queries.count()}, feed ${feed.received.size}, rss api ${Math.round(await rssMiB(pids.api))} MiB, ` +
          `worker ${Math.round(await rssMiB(pids.worker))} MiB`,
      );
    }
  }
  const memoryEnd = { api: await rssMiB(pids.api), worker: await rssMiB(pids.worker) };
  const result = await load.stop();
  const queryLatencies = await queries.stop();
  const delivery = await stack.settle(result, 180_000);
  await feed.settle(result.acceptedIds.size);

  const seconds = result.durationMs / 1000;
  const growth = { api: memoryEnd.api - memoryStart.api, worker: memoryEnd.worker - memoryStart.worker };
  const feedMissing = feed.available
    ? [...result.acceptedIds.keys()].filter((id) => !feed.received.has(id)).length
    : null;
  const summary = {
    minutes: Number(args.minutes),
    ingest: {
      offeredPerSecond: ratePerSecond,
      acceptedPerSecond: Math.round(result.accepted / seconds),
      accepted: result.accepted,
      answers: result.answers,
      p50Ms: round(percentile(result.acceptedLatencies, 50)),
      p99Ms: round(percentile(result.acceptedLatencies, 99)),
    },
    queries: {
      count: queryLatencies.length,
      p50Ms: round(percentile(queryLatencies, 50)),
      p99Ms: round(percentile(queryLatencies, 99)),
    },
    subscriptions: feed.available
      ? { received: feed.received.size, duplicates: feed.duplicates, missing: feedMissing }
      : { skipped: feed.why },
    memoryMiB: {
      start: { api: round(memoryStart.api), worker: round(memoryStart.worker) },
      end: { api: round(memoryEnd.api), worker: round(memoryEnd.worker) },
      growth: { api: round(growth.api), worker: round(growth.worker) },
      bound: maxGrowthMiB,
    },
    stored: delivery.stored,
    lost: delivery.missing.length,
    duplicated: delivery.duplicated.length,
    unexpected: delivery.unexpected.length,
  };
  console.log(JSON.stringify(summary, null, 2));
  const failures = [
    delivery.missing.length > 0 && `${delivery.missing.length} accepted events lost`,
    delivery.duplicated.length > 0 && `${delivery.duplicated.length} events duplicated`,
    growth.api > maxGrowthMiB && `API memory grew ${round(growth.api)} MiB`,
    growth.worker > maxGrowthMiB && `worker memory grew ${round(growth.worker)} MiB`,
    feed.available && feed.duplicates > 0 && `${feed.duplicates} events delivered twice on the live feed`,
  ].filter(Boolean);
  console.log(failures.length === 0 ? 'soak: PASS' : `soak: FAIL (${failures.join('; ')})`);
  await feed.close();
  process.exitCode = failures.length === 0 ? 0 : 1;
} finally {
  await stack.destroy();
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads at a steady rate, alternating REST pages by type and session and a GraphQL page. */
function runQueries(baseUrl: string, apiKey: string, perSecond: number) {
  const latencies: number[] = [];
  let stopped = false;
  const paths = [
    '/events?limit=50',
    '/events?event_type=review_started&limit=50',
    '/events?session_id=s7&limit=50',
  ];
  const graphql = JSON.stringify({ query: '{ events(first: 50) { edges { node { id } } } }' });
  const loop = (async () => {
    for (let i = 0; !stopped; i += 1) {
      const started = performance.now();
      const response =
        i % 4 === 3
          ? await fetch(`${baseUrl}/graphql`, {
              method: 'POST',
              headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
              body: graphql,
            })
          : await fetch(`${baseUrl}${paths[i % 4]}`, { headers: { 'x-api-key': apiKey } });
      await response.arrayBuffer();
      if (response.ok) latencies.push(performance.now() - started);
      else console.warn(`query answered ${response.status}`);
      await sleep(Math.max(0, 1000 / perSecond - (performance.now() - started)));
    }
  })();
  return {
    count: () => latencies.length,
    async stop() {
      stopped = true;
      await loop;
      return latencies;
    },
  };
}

/**
 * The live feed (`eventLogged` over graphql-ws at /graphql). When the server
 * has no such subscription yet, the soak runs without it and says so.
 */
function subscribe(baseUrl: string, apiKey: string) {
  const received = new Set<string>();
  const state = { available: true, why: '', duplicates: 0 };
  const client: Client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { 'x-api-key': apiKey },
    // Reconnect after the connection closes (a restart); a server without the feed (HTTP 400 on
    // upgrade) is not retried: the soak reports the feed as unavailable instead.
    retryAttempts: 1_000_000,
    shouldRetry: (event) => typeof (event as { code?: unknown }).code === 'number',
  });
  client.subscribe<{ eventLogged: { node: { id: string } } }>(
    { query: 'subscription { eventLogged { cursor node { id } } }' },
    {
      next: (message) => {
        const id = message.data?.eventLogged.node.id;
        if (id === undefined) return;
        if (received.has(id)) state.duplicates += 1;
        received.add(id);
      },
      error: (error) => {
        state.available = false;
        state.why = `live feed unavailable: ${error instanceof Error ? error.message : JSON.stringify(error)}`;
      },
      complete: () => undefined,
    },
  );
  return {
    received,
    get available() {
      return state.available;
    },
    get why() {
      return state.why;
    },
    get duplicates() {
      return state.duplicates;
    },
    /** Waits up to 30 s for the feed to have delivered `count` events. */
    async settle(count: number) {
      const deadline = Date.now() + 30_000;
      while (state.available && received.size < count && Date.now() < deadline) await sleep(200);
    },
    close: () => client.dispose(),
  };
}
