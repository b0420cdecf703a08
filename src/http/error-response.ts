import { z } from 'zod';
import { httpStatusOf, type ErrorCode } from '../errors.js';
import { toAppError } from '../to-app-error.js';
import { nameSchema } from './openapi-parts.js';

// A record, so the compiler checks the list against the error family: none missing, none extra.
const CODES: Record<ErrorCode, true> = {
  BAD_REQUEST: true,
  UNAUTHENTICATED: true,
  FORBIDDEN: true,
  NOT_FOUND: true,
  CONFLICT: true,
  METHOD_NOT_ALLOWED: true,
  PAYLOAD_TOO_LARGE: true,
  UNSUPPORTED_MEDIA_TYPE: true,
  RATE_LIMITED: true,
  QUEUE_FULL: true,
  SERVICE_UNAVAILABLE: true,
  INTERNAL: true,
};

/** Every failure's body over REST: the code, a message for people, and the fields at fault. */
export const errorBodySchema = nameSchema(
  'Error',
  z.object({
    error: z.object({
      code: z.enum(Object.keys(CODES) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      fields: z
        .array(z.object({ field: z.string(), message: z.string() }))
        .optional()
        .describe('Each field or parameter at fault, by its dotted path.'),
    }),
  }),
);

export type ErrorBody = z.infer<typeof errorBodySchema>;

/** What a client sees of any failure: an AppError's own message, or a generic one. Never a stack. */
export function toErrorResponse(error: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  const appError = toAppError(error);
  const headers: Record<string, string> = { ...appError.headers };
  if (appError.retryAfterSeconds !== undefined) headers['retry-after'] = String(appError.retryAfterSeconds);
  const body: ErrorBody = { error: { code: appError.code, message: appError.message } };
  if (appError.problems.length > 0) body.error.fields = [...appError.problems];
  return { status: httpStatusOf(appError.code), body, headers };
}
