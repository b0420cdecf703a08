import { z } from 'zod';
import type {
  AnalyticsService,
  LlmAnalytics,
  PerformanceAnalytics,
  UsageAnalytics,
} from '../analytics/analytics-service.js';
import { MAX_DAYS } from '../analytics/analytics-service.js';
import { wholeNumberBetween } from '../validation.js';
import { errorResponse, jsonResponse, keyedErrors, parametersOf, secured } from './openapi-parts.js';
import { parseQuery } from './query-params.js';
import type { Route } from './server.js';

const DEFAULT_DAYS = 7;

const analyticsQuerySchema = z.strictObject({
  days: wholeNumberBetween(1, MAX_DAYS).default(DEFAULT_DAYS).describe('Window ending now, in days.'),
});

// The answers, in the snake_case toSnakeCase gives the service's results; `Same` below has the
// compiler check each against the service's own type, field for field.
const count = z.number().int();
const ratio = z.number().nullable();
const windowSchema = z
  .object({ days: count, from: z.iso.datetime(), to: z.iso.datetime() })
  .describe('From the start of the UTC hour `days` × 24 h ago, to now (by received_at).');
const percentiles = z.object({
  samples: count,
  p50: z.number().nullable(),
  p95: z.number().nullable(),
  p99: z.number().nullable(),
});
const typeCount = z.object({ event_type: z.string(), events: count });

const usageSchema = z.object({
  window: windowSchema,
  total_events: count,
  events_by_type: z.array(typeCount),
  events_by_day: z.array(z.object({ date: z.string(), events: count, by_type: z.array(typeCount) })),
  distinct_sessions: count,
  reviews: z.object({ started: count, completed: count, completion_rate: ratio }),
  errors: z.object({ count, rate: ratio }),
});

const llmUsage = {
  queries: count,
  responses: count,
  failures: count,
  failure_rate: ratio,
  tokens: z.object({ prompt: count, completion: count, cached: count, reasoning: count }),
  cost: z.object({
    usd: z.number(),
    reported_usd: z.number(),
    computed_usd: z.number(),
    partial: z.boolean(),
    unpriced_responses: count,
  }),
  latency_ms: percentiles,
};
const llmSchema = z.object({
  window: windowSchema,
  models: z.array(z.object({ model: z.string(), priced: z.boolean(), ...llmUsage })),
  totals: z.object(llmUsage),
});

const performanceSchema = z.object({
  window: windowSchema,
  review_duration_ms: percentiles,
  syntax_analysis_duration_ms: percentiles,
  events_per_hour: z.object({
    average: z.number(),
    series: z.array(z.object({ hour: z.iso.datetime(), events: count })),
  }),
  pipeline_lag_ms: percentiles.extend({ max: z.number().nullable() }),
});

const reports = {
  usage: {
    schema: usageSchema,
    operationId: 'usageAnalytics',
    summary: 'Events per type and day, sessions, completion and error rates',
  },
  llm: {
    schema: llmSchema,
    operationId: 'llmAnalytics',
    summary: 'LLM queries, responses, tokens, cost and latency per model',
  },
  performance: {
    schema: performanceSchema,
    operationId: 'performanceAnalytics',
    summary: 'Review and syntax-analysis durations, events per hour, pipeline lag',
  },
} as const;

/**
 * `GET /analytics/usage`, `/analytics/llm` and `/analytics/performance`, each with
 * `days` (1–365, default 7): thin routes over the analytics service, answering its
 * results in snake_case with dates as ISO 8601 strings.
 * @throws AppError BAD_REQUEST naming the parameter for a bad `days` or any other parameter.
 */
export function createAnalyticsRoutes(
  service: Pick<AnalyticsService, 'usage' | 'llm' | 'performance'>,
): Route[] {
  const route = (name: keyof typeof reports): Route => ({
    method: 'GET',
    path: `/analytics/${name}`,
    scope: 'read',
    async handle({ url }) {
      const { days } = parseQuery(analyticsQuerySchema, url.searchParams);
      return { status: 200, body: toSnakeCase(await service[name](days)) };
    },
  });
  return [route('usage'), route('llm'), route('performance')];
}

/** The OpenAPI paths of {@link createAnalyticsRoutes}, assembled by src/http/openapi.ts. */
export const analyticsOpenApiPaths = Object.fromEntries(
  Object.entries(reports).map(([name, report]) => [
    `/analytics/${name}`,
    {
      get: {
        operationId: report.operationId,
        summary: report.summary,
        ...secured,
        parameters: parametersOf(analyticsQuerySchema),
        responses: {
          '200': jsonResponse('Analytics over the window', report.schema),
          '400': errorResponse('A parameter is malformed or out of range; `fields` names it.'),
          ...keyedErrors('read'),
        },
      },
    },
  ]),
);

/** A key in snake_case as {@link toSnakeCase} writes it (digits and lower case stay). */
type SnakeKey<Key extends string> = Key extends `${infer First}${infer Rest}`
  ? `${First extends Lowercase<First> ? First : `_${Lowercase<First>}`}${SnakeKey<Rest>}`
  : Key;

/** What {@link toSnakeCase} makes of a `T`. */
type SnakeJson<T> = T extends Date
  ? string
  : T extends readonly (infer Item)[]
    ? SnakeJson<Item>[]
    : T extends object
      ? { [Key in keyof T as Key extends string ? SnakeKey<Key> : Key]: SnakeJson<T[Key]> }
      : T;

/** True only when `A` and `B` are the same type: the answer schemas cannot drift from the service. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemasMatchService: [
  Same<SnakeJson<UsageAnalytics>, z.infer<typeof usageSchema>>,
  Same<SnakeJson<LlmAnalytics>, z.infer<typeof llmSchema>>,
  Same<SnakeJson<PerformanceAnalytics>, z.infer<typeof performanceSchema>>,
] = [true, true, true];
void schemasMatchService;

/** A service result as JSON: camelCase keys in snake_case (`p95` stays), dates as ISO strings. */
function toSnakeCase<T>(value: T): SnakeJson<T>;
function toSnakeCase(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toSnakeCase);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`),
        toSnakeCase(item),
      ]),
    );
  }
  return value;
}
