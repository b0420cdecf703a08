import type { z } from 'zod';
import { parseOrThrow } from '../validation.js';

/**
 * Parses a route's query string with its schema.
 * @throws AppError BAD_REQUEST naming every bad or unknown parameter.
 */
export function parseQuery<Schema extends z.ZodType>(
  schema: Schema,
  params: URLSearchParams,
): z.output<Schema> {
  return parseOrThrow(schema, Object.fromEntries(params), 'query');
}

/**
 * Parses a route's JSON body (already read) with its schema.
 * @throws AppError BAD_REQUEST naming every bad or unknown field.
 */
export function parseBody<Schema extends z.ZodType>(schema: Schema, body: unknown): z.output<Schema> {
  return parseOrThrow(schema, body, 'request body');
}
