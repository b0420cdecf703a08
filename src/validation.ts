import { z } from 'zod';
import { badRequest, type FieldProblem } from './errors.js';

/**
 * The zod pieces and checks every front door shares (REST, GraphQL, the CLI):
 * one definition of a seq, a bounded whole number and a field problem, so the
 * same bad value gets the same message wherever it is sent.
 */

/** An error message for a field: "is required" when it is absent, `message` otherwise. */
export const unlessMissing =
  (message: string) =>
  (issue: { input?: unknown }): string =>
    issue.input === undefined ? 'is required' : message;

/** The largest `bigint` (int8): seq positions and cursors past it overflow in SQL. */
export const MAX_SEQ = 9_223_372_036_854_775_807n;
export const MIN_SEQ = -9_223_372_036_854_775_808n;

const SEQ_TEXT = /^\d{1,19}$/;
const SEQ_MESSAGE = 'must be a seq: a whole number from 0 to 9223372036854775807';

/** Whether `text` is a position a client may give: 0..{@link MAX_SEQ} in decimal (seqs start at 1). */
function isSeqText(text: string): boolean {
  return SEQ_TEXT.test(text) && BigInt(text) <= MAX_SEQ;
}

/**
 * A pattern that matches exactly the decimal texts of 0..`max` (leading zeros allowed, up to
 * `max`'s length), so a document generated from a schema states the bound a refinement would hide.
 */
function decimalAtMostPattern(max: bigint): string {
  const digits = max.toString();
  const alternatives = digits.length > 1 ? [`\\d{1,${digits.length - 1}}`] : [];
  for (let at = 0; at < digits.length; at += 1) {
    const digit = Number(digits[at]);
    if (digit > 0) alternatives.push(`${digits.slice(0, at)}[0-${digit - 1}]\\d{${digits.length - 1 - at}}`);
  }
  alternatives.push(digits);
  return `^(?:${alternatives.join('|')})$`;
}

/** {@link isSeqText} as a pattern (JSON Schema, OpenAPI). */
const SEQ_PATTERN = decimalAtMostPattern(MAX_SEQ);

/** A zod piece for a seq given as text (query strings, GraphQL String arguments). */
export const seqText = z.string().regex(new RegExp(SEQ_PATTERN), SEQ_MESSAGE);

/** @throws AppError BAD_REQUEST naming `field` when `text` is not a seq (see {@link isSeqText}). */
export function checkSeqText(text: string, field: string): string {
  if (!isSeqText(text)) throw badRequest(`${field} ${SEQ_MESSAGE}`, [{ field, message: SEQ_MESSAGE }]);
  return text;
}

/**
 * A whole number from `min` to `max`, given as text (query strings, environment,
 * command-line options) or as a number; its range is named in one message,
 * "must be between `min` and `max`", whichever bound is crossed.
 */
export const wholeNumberBetween = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be between ${min} and ${max}`)
    .max(max, `must be between ${min} and ${max}`);

/**
 * Flattens zod issues into field problems whose paths a caller can act on.
 * `unknownFieldHint` follows the message of an unknown field (what to do instead).
 */
export function toFieldProblems(error: z.ZodError, unknownFieldHint?: string): FieldProblem[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const names = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((key) => `'${key}'`).join(', ')}`;
      return {
        field: [...issue.path, ...issue.keys].map(String).join('.') || '(body)',
        message: unknownFieldHint === undefined ? names : `${names}; ${unknownFieldHint}`,
      };
    }
    return { field: issue.path.map(String).join('.') || '(body)', message: issue.message };
  });
}

/**
 * `input` parsed with `schema`.
 * @throws AppError BAD_REQUEST naming every bad or unknown field of `what` (e.g. "query").
 */
export function parseOrThrow<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
  what: string,
): z.output<Schema> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = toFieldProblems(parsed.error);
  throw badRequest(`Invalid ${what}: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`, problems);
}
