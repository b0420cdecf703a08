import { httpStatusOf, type ErrorCode } from '../errors.js';
import { toAppError } from '../to-app-error.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; fields?: Array<{ field: string; message: string }> };
}

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
