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
  return parseInput(schema, Object.fromEntries(params), 'query');
}

/**
 * Parses a route's JSON body (already read) with its schema.
 * @throws AppError BAD_REQUEST naming every bad or unknown field.
 */
export function parseBody<Schema extends z.ZodType>(schema: Schema, body: unknown): z.output<Schema> {
  return parseInput(schema, body, 'request body');
}

function parseInput<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
  what: string,
): z.output<Schema> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = toFieldProblems(parsed.error);
  throw badRequest(`Invalid ${what}: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
}
