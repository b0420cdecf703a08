import { z } from 'zod';
import type { AnalyticsService } from '../analytics/analytics-service.js';
import { MAX_DAYS } from '../analytics/analytics-service.js';
import { parseQuery } from './query-params.js';
import type { Route } from './server.js';

const DEFAULT_DAYS = 7;

const analyticsQuerySchema = z.strictObject({
  days: z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(1, `must be between 1 and ${MAX_DAYS}`)
    .max(MAX_DAYS, `must be between 1 and ${MAX_DAYS}`)
    .default(DEFAULT_DAYS),
});

/**
 * `GET /analytics/usage`, `/analytics/llm` and `/analytics/performance`, each with
 * `days` (1–365, default 7): thin routes over the analytics service, answering its
 * results in snake_case with dates as ISO 8601 strings.
 * @throws AppError BAD_REQUEST naming the parameter for a bad `days` or any other parameter.
 */
export function createAnalyticsRoutes(
  service: Pick<AnalyticsService, 'usage' | 'llm' | 'performance'>,
): Route[] {
  const route = (name: 'usage' | 'llm' | 'performance'): Route => ({
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

/** A service result as JSON: camelCase keys in snake_case (`p95` stays), dates as ISO strings. */
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
