import { randomUUID } from 'node:crypto';
import http from 'node:http';

/**
 * A steady stream of `POST /log` requests, each event carrying its own
 * `event_id` (and a sequence number `n` in its payload), recording every
 * answer. Like a well-behaved caller, it retries an event on 503, 429 or a
 * network error with the same `event_id` (so retries are safe), until the
 * event is answered 202 or the run ends.
 */
export interface LoadOptions {
  /** Base URLs of the API processes; a retry after a network error goes to the next one. */
  targets: readonly string[];
  apiKey: string;
  /** Events started per second. */
  ratePerSecond: number;
  /** Events started and not yet answered 202 (retries included): past this, the generator holds back. */
  maxInFlight: number;
  /** Retry refused events (default true). Off, each event gets exactly one answer. */
  retry?: boolean;
  /** Gives up on a request that has not been answered after this long, as a network error (default 10 s). */
  requestTimeoutMs?: number;
  /** First payload sequence number (default 0): loads running side by side need disjoint ranges. */
  firstSequence?: number;
}

/** An answer's kind: the status code, `503 QUEUE_FULL`/`503 SERVICE_UNAVAILABLE`, or a network error code. */
export type AnswerKind = string;

export interface LoadSnapshot {
  started: number;
  accepted: number;
  inFlight: number;
  /** Answers by kind, retries included. */
  answers: Record<AnswerKind, number>;
}

export interface LoadResult extends LoadSnapshot {
  durationMs: number;
  /** event_id → payload sequence number, for every event answered 202. */
  acceptedIds: Map<string, number>;
  /** Every event sent at least once, answered or not. */
  attemptedIds: Map<string, number>;
  /** Events only ever refused outright (429, or 503 QUEUE_FULL): never enqueued. */
  refusedOnlyIds: Set<string>;
  /** Events never answered 202 when the run ended. */
  unresolvedIds: Set<string>;
  /** Ticks at which the generator held back because `maxInFlight` events were outstanding. */
  heldBack: number;
  /** Latency of each 202 answer, ms (one request, not counting earlier attempts). */
  acceptedLatencies: number[];
  /** Latency of each refusal (429/503), ms. */
  refusalLatencies: number[];
  /** Time from an event's first attempt to its 202, ms, for events that needed retries. */
  retriedEventLatencies: number[];
  /** Responses without a Retry-After header among 429/503 answers (must be 0). */
  refusalsWithoutRetryAfter: number;
  /** Unexpected answers (any status other than 202, 429, 503), with their bodies. */
  unexpected: string[];
  /** Per-answer timeline: [ms since start, kind]. */
  timeline: Array<[number, AnswerKind]>;
}

export interface Load {
  snapshot(): LoadSnapshot;
  /** Time (ms since the load started) of the first answer of `kind` at or after `fromMs`. */
  firstAnswerAfter(kind: AnswerKind, fromMs: number): number | undefined;
  /** Ms since the load started. */
  now(): number;
  /**
   * Stops starting events, keeps retrying outstanding ones for up to
   * `drainMs`, then reports. Events still unanswered are `unresolvedIds`.
   */
  stop(drainMs?: number): Promise<LoadResult>;
}

interface Outcome {
  status: number;
  kind: AnswerKind;
  retryAfter: string | undefined;
  body: string;
}

export function startLoad(options: LoadOptions): Load {
  const retry = options.retry ?? true;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const agents = options.targets.map(
    () => new http.Agent({ keepAlive: true, maxSockets: Math.min(options.maxInFlight, 256) }),
  );
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const result: LoadResult = {
    started: 0,
    accepted: 0,
    inFlight: 0,
    answers: {},
    durationMs: 0,
    acceptedIds: new Map(),
    attemptedIds: new Map(),
    refusedOnlyIds: new Set(),
    unresolvedIds: new Set(),
    heldBack: 0,
    acceptedLatencies: [],
    refusalLatencies: [],
    retriedEventLatencies: [],
    refusalsWithoutRetryAfter: 0,
    unexpected: [],
    timeline: [],
  };
  let stopping = false;
  let giveUp = false;
  let nextTarget = 0;
  const outstanding = new Set<Promise<void>>();

  const post = (targetIndex: number, body: string): Promise<Outcome> =>
    new Promise((resolve) => {
      const url = new URL('/log', options.targets[targetIndex]);
      const request = http.request(
        url,
        {
          method: 'POST',
          agent: agents[targetIndex],
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            'x-api-key': options.apiKey,
          },
          timeout: timeoutMs,
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            const status = response.statusCode ?? 0;
            let kind = String(status);
            if (status === 503) {
              const code = /"code":"([A-Z_]+)"/.exec(text)?.[1];
              kind = `503 ${code ?? 'unknown'}`;
            }
            const retryAfter = response.headers['retry-after'];
            resolve({
              status,
              kind,
              retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined,
              body: text,
            });
          });
          response.on('error', (error: NodeJS.ErrnoException) =>
            resolve({ status: 0, kind: error.code ?? 'ERR', retryAfter: undefined, body: error.message }),
          );
        },
      );
      request.on('timeout', () => request.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      request.on('error', (error: NodeJS.ErrnoException) =>
        resolve({ status: 0, kind: error.code ?? 'ERR', retryAfter: undefined, body: error.message }),
      );
      request.end(body);
    });

  async function sendEvent(n: number): Promise<void> {
    const id = randomUUID();
    const body = JSON.stringify({
      event_id: id,
      session_id: `s${n % 64}`,
      event_type: 'review_started',
      payload: { n, code_language: 'typescript', file_count: n % 10 },
    });
    result.attemptedIds.set(id, n);
    const firstAttemptAt = now();
    let target = nextTarget++ % options.targets.length;
    let refusedOnly = true;
    for (let attempt = 0; ; attempt += 1) {
      const sentAt = now();
      const outcome = await post(target, body);
      const answeredAt = now();
      const latency = answeredAt - sentAt;
      result.answers[outcome.kind] = (result.answers[outcome.kind] ?? 0) + 1;
      result.timeline.push([Math.round(answeredAt), outcome.kind]);
      if (outcome.status === 202) {
        result.accepted += 1;
        result.acceptedIds.set(id, n);
        result.acceptedLatencies.push(latency);
        if (attempt > 0) result.retriedEventLatencies.push(answeredAt - firstAttemptAt);
        return;
      }
      let delayMs: number;
      if (outcome.status === 429 || outcome.status === 503) {
        result.refusalLatencies.push(latency);
        if (outcome.retryAfter === undefined) result.refusalsWithoutRetryAfter += 1;
        // A 503 from an unreachable Redis may hide an append that happened: not "refused only".
        if (outcome.kind !== '429' && outcome.kind !== '503 QUEUE_FULL') refusedOnly = false;
        const retryAfterMs = Number(outcome.retryAfter ?? '1') * 1000;
        delayMs = Math.min(retryAfterMs, 1000) * (0.25 + Math.random() * 0.75);
      } else if (outcome.status === 0) {
        refusedOnly = false;
        delayMs = 50 + Math.random() * 150;
        target = (target + 1) % options.targets.length;
      } else {
        refusedOnly = false;
        result.unexpected.push(`${outcome.status} ${outcome.body.slice(0, 300)}`);
        break;
      }
      if (!retry || giveUp) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      if (giveUp) break;
    }
    result.unresolvedIds.add(id);
    if (refusedOnly) result.refusedOnlyIds.add(id);
  }

  const tickMs = 10;
  let issued = 0;
  const ticker = setInterval(() => {
    const due = Math.floor((now() / 1000) * options.ratePerSecond) - issued;
    for (let i = 0; i < due; i += 1) {
      issued += 1;
      if (outstanding.size >= options.maxInFlight) {
        result.heldBack += 1;
        continue;
      }
      const n = (options.firstSequence ?? 0) + result.started++;
      const task = sendEvent(n).finally(() => outstanding.delete(task));
      outstanding.add(task);
    }
  }, tickMs);

  return {
    now,
    snapshot: () => ({
      started: result.started,
      accepted: result.accepted,
      inFlight: outstanding.size,
      answers: { ...result.answers },
    }),
    firstAnswerAfter(kind, fromMs) {
      for (const [at, answer] of result.timeline) if (at >= fromMs && answer === kind) return at;
      return undefined;
    },
    async stop(drainMs = 30_000) {
      if (stopping) throw new Error('load already stopped');
      stopping = true;
      clearInterval(ticker);
      const drained = Promise.all([...outstanding]);
      const timer = setTimeout(() => (giveUp = true), drainMs);
      await drained;
      clearTimeout(timer);
      result.durationMs = now();
      result.inFlight = 0;
      for (const agent of agents) agent.destroy();
      return result;
    },
  };
}

/** What `audit_events` holds, compared with what callers were told. */
export interface DeliveryReport {
  accepted: number;
  stored: number;
  /** Answered 202, not stored: lost. */
  missing: string[];
  /** Stored more than once (by id or by the payload's sequence number). */
  duplicated: string[];
  /** Stored, but never sent by this load. */
  unexpected: string[];
  /** Stored, although every answer refused it outright (never enqueued). */
  storedButRefused: string[];
}

/** Compares the events answered 202 with the rows stored; every list empty means exactly once. */
export function compareDelivery(
  load: Pick<LoadResult, 'acceptedIds' | 'attemptedIds' | 'refusedOnlyIds'>,
  rows: ReadonlyArray<{ id: string; n: number | null }>,
): DeliveryReport {
  const storedById = new Map<string, number>();
  const storedByN = new Map<number, number>();
  const unexpected: string[] = [];
  for (const row of rows) {
    storedById.set(row.id, (storedById.get(row.id) ?? 0) + 1);
    if (row.n !== null) storedByN.set(row.n, (storedByN.get(row.n) ?? 0) + 1);
    if (!load.attemptedIds.has(row.id)) unexpected.push(row.id);
  }
  const missing = [...load.acceptedIds.keys()].filter((id) => !storedById.has(id));
  const duplicated = [
    ...[...storedById].filter(([, count]) => count > 1).map(([id]) => id),
    ...[...storedByN].filter(([, count]) => count > 1).map(([n]) => `n=${n}`),
  ];
  const storedButRefused = [...load.refusedOnlyIds].filter((id) => storedById.has(id));
  return {
    accepted: load.acceptedIds.size,
    stored: rows.length,
    missing,
    duplicated,
    unexpected,
    storedButRefused,
  };
}

/** Percentile of `values` (0–100), 0 when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
