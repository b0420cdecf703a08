import { AppError, UnreachableCaseError, type ErrorCode } from '../errors.js';

/** The one mapping from the error family to HTTP statuses. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case 'BAD_REQUEST':
      return 400;
    case 'UNAUTHENTICATED':
      return 401;
    case 'FORBIDDEN':
      return 403;
    case 'NOT_FOUND':
      return 404;
    case 'METHOD_NOT_ALLOWED':
      return 405;
    case 'PAYLOAD_TOO_LARGE':
      return 413;
    case 'UNSUPPORTED_MEDIA_TYPE':
      return 415;
    case 'RATE_LIMITED':
      return 429;
    case 'QUEUE_FULL':
    case 'SERVICE_UNAVAILABLE':
      return 503;
    case 'INTERNAL':
      return 500;
    default:
      throw new UnreachableCaseError(code);
  }
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; fields?: Array<{ field: string; message: string }> };
}

/** What a client sees of any failure: an AppError's own message, or a generic one. Never a stack. */
export function toErrorResponse(error: unknown): {
  status: number;
  body: ErrorBody;
  headers: Record<string, string>;
} {
  const appError =
    error instanceof AppError ? error : new AppError('INTERNAL', 'Internal server error.', { cause: error });
  const headers: Record<string, string> = {};
  if (appError.retryAfterSeconds !== undefined) headers['retry-after'] = String(appError.retryAfterSeconds);
  const body: ErrorBody = { error: { code: appError.code, message: appError.message } };
  if (appError.problems.length > 0) body.error.fields = [...appError.problems];
  return { status: httpStatusOf(appError.code), body, headers };
}
