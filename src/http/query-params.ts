import type { z } from 'zod';
import { badRequest } from '../errors.js';
import { toFieldProblems } from '../ingest/event.js';

/**
 * Parses a route's query string with its schema.
 * @throws AppError BAD_REQUEST naming every bad or unknown parameter.
 */
export function parseQuery<Schema extends z.ZodType>(
  schema: Schema,
  params: URLSearchParams,
): z.output<Schema> {
  const parsed = schema.safeParse(Object.fromEntries(params));
  if (parsed.success) return parsed.data;
  const problems = toFieldProblems(parsed.error);
  throw badRequest(`Invalid query: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
}
