/**
 * The synthetic events the query bench loads: deterministic (a seeded
 * generator, so runs compare), spread over 30 days in time order, in the mix of
 * types, models and sessions a code-review product would send.
 */
import type { EventType } from '../../src/events/event-types.js';
import type { NewEvent } from '../../src/events/stored-event.js';

export const SPAN_DAYS = 30;
export const SESSIONS = 100_000;
export const BATCH = 1000; // WORKER_BATCH_SIZE's default: the batches the worker writes
export const SEED = 20261126;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

let seed = SEED;
/** Deterministic uniform [0, 1) (mulberry32), so runs compare. */
const random = (): number => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const int = (below: number): number => Math.floor(random() * below);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
/** Log-normal around `median`, spreading about a decade either way. */
const lognormal = (median: number, sigma = 0.8): number => {
  const gauss = Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  return Math.round(median * Math.exp(gauss * sigma) * 10) / 10;
};

/** Share of each type: LLM round trips dominate, errors are rare. */
const TYPE_MIX: ReadonlyArray<[EventType, number]> = [
  ['review_started', 0.08],
  ['review_completed', 0.075],
  ['syntax_analysis_started', 0.12],
  ['syntax_analysis_completed', 0.115],
  ['llm_query_sent', 0.28],
  ['llm_feedback_received', 0.28],
  ['error_occurred', 0.05],
];
const pickType = (): EventType => {
  let draw = random();
  for (const [type, share] of TYPE_MIX) {
    if (draw < share) return type;
    draw -= share;
  }
  return 'llm_feedback_received';
};

/** Model, share, median latency; `in-house-7b` has no price in src/analytics/prices.ts. */
const MODELS: ReadonlyArray<[string, number, number]> = [
  ['gpt-4o', 0.3, 1800],
  ['gpt-4o-mini', 0.25, 700],
  ['claude-sonnet-4', 0.2, 2200],
  ['o4-mini', 0.1, 4500],
  ['gemini-2.0-flash', 0.1, 600],
  ['in-house-7b', 0.05, 350],
];
const pickModel = (): [string, number] => {
  let draw = random();
  for (const [model, share, latency] of MODELS) {
    if (draw < share) return [model, latency];
    draw -= share;
  }
  return ['gpt-4o', 1800];
};
const LANGUAGES = ['python', 'typescript', 'go', 'java', 'rust', 'kotlin', 'ruby', 'csharp'];
const ERRORS: ReadonlyArray<[string, string, string]> = [
  ['ParseError', 'syntax', "unexpected token ')' at line 212, column 17"],
  ['RateLimitError', 'llm', 'provider answered 429: rate limit reached for requests per minute'],
  ['TimeoutError', 'llm', 'no response from the model within 60000 ms'],
  ['GitError', 'checkout', 'fatal: could not read from remote repository (exit code 128)'],
  ['ValidationError', 'review', 'diff exceeds the 5000-line limit for a single review'],
];

/** A payload as the event catalog (src/ingest/catalog.ts) documents it, plus the extra fields callers send. */
function payloadFor(type: EventType, session: number): Record<string, unknown> {
  const repository = `acme/service-${session % 250}`;
  switch (type) {
    case 'review_started':
      return {
        code_language: pick(LANGUAGES),
        file_count: 1 + int(30),
        repository,
        pull_request: 1000 + (session % 9000),
      };
    case 'syntax_analysis_started':
      return { code_language: pick(LANGUAGES), file_count: 1 + int(30), repository };
    case 'review_completed':
      return { duration_ms: lognormal(20_000), issues_found: int(12), file_count: 1 + int(30), repository };
    case 'syntax_analysis_completed':
      return { duration_ms: lognormal(300), errors_found: random() < 0.8 ? 0 : 1 + int(5) };
    case 'llm_query_sent': {
      const [model] = pickModel();
      const prompt = 200 + int(6000);
      return {
        model,
        prompt_tokens: prompt,
        ...(random() < 0.4 ? { cached_tokens: Math.floor(prompt * random() * 0.6) } : {}),
        purpose: pick(['review', 'summary', 'fix-suggestion']),
      };
    }
    case 'llm_feedback_received': {
      const [model, latency] = pickModel();
      const prompt = 200 + int(6000);
      const reasoning = model.startsWith('o4') ? int(2000) : 0;
      return {
        model,
        prompt_tokens: prompt,
        completion_tokens: 50 + int(1200) + reasoning,
        cached_tokens: random() < 0.4 ? Math.floor(prompt * random() * 0.6) : 0,
        reasoning_tokens: reasoning,
        latency_ms: lognormal(latency, 0.6),
        ...(random() < 0.6 ? { cost_usd: Math.round(random() * 2e5) / 1e7 } : {}),
        success: random() > 0.03,
      };
    }
    case 'error_occurred': {
      const [errorType, stage, message] = pick(ERRORS);
      return { error_type: errorType, message, stage };
    }
  }
}

/** A UUIDv7 whose timestamp is `ms`, with a counter keeping ids of one millisecond in order. */
let uuidCounter = 0;
function uuidv7At(ms: number): string {
  const time = ms.toString(16).padStart(12, '0');
  uuidCounter = (uuidCounter + 1) & 0xfff;
  const tail = () => int(0x10000).toString(16).padStart(4, '0');
  return (
    `${time.slice(0, 8)}-${time.slice(8, 12)}-${(0x7000 | uuidCounter).toString(16)}-` +
    `${(0x8000 | int(0x4000)).toString(16)}-${tail()}${tail()}${tail()}`
  );
}

/**
 * Event `index` of `total`, at its place in the 30 days ending at `end`: events come
 * in time order (as the worker stores them, so `seq` follows time). Sessions are
 * review runs of ~20 minutes: session k is active around k/SESSIONS of the span,
 * interleaved with its ~40 neighbours, ~50 events each on average.
 */
export function makeEvent(index: number, total: number, end: number): NewEvent {
  const fraction = index / total;
  const ms = Math.floor(end - SPAN_DAYS * DAY_MS + fraction * SPAN_DAYS * DAY_MS);
  const session = Math.min(
    SESSIONS - 1,
    Math.max(0, Math.floor(fraction * SESSIONS + (random() - 0.5) * 40)),
  );
  const type = pickType();
  const receivedAt = new Date(ms).toISOString();
  return {
    id: uuidv7At(ms),
    eventType: type,
    sessionId: String(session),
    payload: payloadFor(type, session),
    clientTime: random() < 0.3 ? new Date(ms - 20 - int(400)).toISOString() : null,
    receivedAt,
    apiKeyId: 'bench-loader',
  };
}
