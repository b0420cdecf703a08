import { AppError, httpStatusOf, serviceUnavailable, type ErrorCode } from '../errors.js';
import { isDatabaseUnavailable } from '../store/database.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; fields?: Array<{ field: string; message: string }> };
}

/**
 * The error family member a failure is for a client: AppErrors as they are, an
 * unreachable database as SERVICE_UNAVAILABLE (retry later), anything else as
 * INTERNAL with a generic message. REST and GraphQL both map through here.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error))
    return serviceUnavailable('The database is unavailable; retry later.', 5, error);
  return new AppError('INTERNAL', 'Internal server error.', { cause: error });
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
