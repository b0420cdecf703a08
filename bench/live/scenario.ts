/**
 * One scenario on one target: subscribers connected (bench/live/clients.ts, over
 * IPC), events posted at a rate, deliveries counted and timed, memory and CPU
 * of the server read from /proc.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuSecondsOf, rssMiB } from '../support/cpu.js';
import { percentile } from '../support/stats.js';
import type { Clients } from './clients-process.js';
import { now, postAtRate } from './post-at-rate.js';

const SAMPLE_EVERY = 20;
const QUERY = `subscription($filter: EventFilter) {
  eventLogged(filter: $filter) { cursor node { id seq eventType sessionId payload receivedAt } }
}`;
const cpuSeconds = (pid: number) => cpuSecondsOf(pid) ?? Number.NaN;

export interface ScenarioResult {
  target: 'auditgraph' | 'bare ws';
  scenario: string;
  subscribers: number;
  eventsPerSecond: number;
  posted: number;
  expectedMessages: number;
  deliveredMessages: number;
  deliveredPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** The server process's CPU over the posting and draining window, in % of one core. */
  serverCpuPercent: number;
  rssBeforeMiB: number;
  rssHeldMiB: number;
  rssEndMiB: number;
}

async function liveSubscriptions(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  return Number(/^auditgraph_live_subscriptions (\d+)/m.exec(text)?.[1] ?? 0);
}

export async function scenario(options: {
  target: 'auditgraph' | 'bare ws';
  name: string;
  baseUrl: string;
  pid: number;
  apiKey: string;
  clients: Clients;
  subscribers: number;
  rate: number;
  selective: boolean;
  durationS: number;
  /** The subscribers' WebSocket client: raw-client.ts or ws. */
  client: string;
}): Promise<ScenarioResult> {
  const { clients, pid, subscribers, rate, selective, durationS } = options;
  const prefix = `bench-${randomBytes(3).toString('hex')}-`;
  const rssBeforeMiB = rssMiB(pid);
  await clients.request(
    {
      type: 'connect',
      url: `${options.baseUrl.replace('http', 'ws')}/graphql`,
      protocol: options.target === 'auditgraph' ? 'graphql-ws' : 'bare',
      apiKey: options.apiKey,
      connections: subscribers,
      sessionPrefix: selective ? prefix : undefined,
      query: QUERY,
      sampleEvery: selective ? 1 : SAMPLE_EVERY,
      client: options.client,
    },
    'connected',
  );
  if (options.target === 'auditgraph') {
    const deadline = Date.now() + 60_000;
    while ((await liveSubscriptions(`${options.baseUrl}/metrics`)) < subscribers && Date.now() < deadline) {
      await sleep(200);
    }
  } else await sleep(1000);
  await sleep(1000);
  const rssHeldMiB = rssMiB(pid);
  await clients.request({ type: 'reset' }, 'reset');

  const cpuBefore = cpuSeconds(pid);
  const posting = await postAtRate(options.baseUrl, options.apiKey, rate, durationS, (index) =>
    selective ? `${prefix}${index % subscribers}` : 'broadcast',
  );
  const posted = posting.answeredAt.size;
  const expectedMessages = selective ? posted : posted * subscribers;
  let report: Record<string, unknown> = {};
  const drainDeadline = Date.now() + 15_000;
  for (;;) {
    report = await clients.request({ type: 'report' }, 'report');
    if ((report['messages'] as number) >= expectedMessages || Date.now() > drainDeadline) break;
    await sleep(250);
  }
  const rssEndMiB = rssMiB(pid);
  const serverCpuPercent = Math.round(
    (100 * (cpuSeconds(pid) - cpuBefore)) / ((now() - posting.startedAt) / 1000),
  );
  const latencies: number[] = [];
  for (const [id, times] of report['receipts'] as Array<[string, number[]]>) {
    const answered = posting.answeredAt.get(id);
    if (answered === undefined) continue;
    for (const at of times) latencies.push(Math.max(0, at - answered));
  }
  latencies.sort((a, b) => a - b);
  const delivered = report['messages'] as number;
  const windowS = ((report['lastAt'] as number) - posting.startedAt) / 1000;
  await clients.request({ type: 'close' }, 'closed');
  await sleep(1500);
  return {
    target: options.target,
    scenario: options.name,
    subscribers,
    eventsPerSecond: rate,
    posted,
    expectedMessages,
    deliveredMessages: delivered,
    deliveredPerSecond: Math.round(delivered / Math.max(windowS, durationS)),
    latencyP50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
    latencyP99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
    serverCpuPercent,
    rssBeforeMiB: Math.round(rssBeforeMiB),
    rssHeldMiB: Math.round(rssHeldMiB),
    rssEndMiB: Math.round(rssEndMiB),
  };
}
