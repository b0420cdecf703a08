/**
 * The one error family clients can see. Every failure that reaches a front door
 * (REST, GraphQL, WebSocket) is one of these or is reported as INTERNAL without
 * its message. `src/http/error-response.ts` maps the codes to HTTP statuses.
 */
export type ErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'RATE_LIMITED'
  | 'QUEUE_FULL'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL';

export interface FieldProblem {
  /** Dotted path of the offending field in the request, e.g. `payload.file_count`. */
  field: string;
  message: string;
}

export class AppError extends Error {
  readonly code: ErrorCode;
  /** Seconds after which a retry may succeed (QUEUE_FULL, RATE_LIMITED, SERVICE_UNAVAILABLE). */
  readonly retryAfterSeconds: number | undefined;
  readonly problems: readonly FieldProblem[];
  /** Response headers the error brings (rate-limit state). */
  readonly headers: Readonly<Record<string, string>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      retryAfterSeconds?: number;
      problems?: readonly FieldProblem[];
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.problems = options.problems ?? [];
    this.headers = options.headers ?? {};
  }
}

export const badRequest = (message: string, problems: readonly FieldProblem[] = []): AppError =>
  new AppError('BAD_REQUEST', message, { problems });

/** An event id already holding a different event: refused, never stored twice or silently dropped. */
export const eventIdConflict = (ids: readonly string[], problems: readonly FieldProblem[]): AppError =>
  new AppError(
    'CONFLICT',
    `event_id ${ids.join(', ')} already holds a different event; send a new event_id for a new event`,
    { problems },
  );

export const unauthenticated = (message: string): AppError => new AppError('UNAUTHENTICATED', message);

export const queueFull = (retryAfterSeconds: number): AppError =>
  new AppError('QUEUE_FULL', 'The ingest queue is full; retry later.', { retryAfterSeconds });

export const serviceUnavailable = (message: string, retryAfterSeconds: number, cause?: unknown): AppError =>
  new AppError('SERVICE_UNAVAILABLE', message, { retryAfterSeconds, cause });

/** The one mapping from the error family to HTTP statuses (REST, and GraphQL's transport-level errors). */
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
    case 'CONFLICT':
      return 409;
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

/** The one mapping from the error family to GraphQL `extensions.code`, in Apollo's vocabulary where it has a word. */
export function graphqlCodeOf(code: ErrorCode): string {
  switch (code) {
    case 'BAD_REQUEST':
      return 'BAD_USER_INPUT';
    case 'INTERNAL':
      return 'INTERNAL_SERVER_ERROR';
    case 'UNAUTHENTICATED':
    case 'FORBIDDEN':
    case 'NOT_FOUND':
    case 'CONFLICT':
    case 'METHOD_NOT_ALLOWED':
    case 'PAYLOAD_TOO_LARGE':
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'RATE_LIMITED':
    case 'QUEUE_FULL':
    case 'SERVICE_UNAVAILABLE':
      return code;
    default:
      throw new UnreachableCaseError(code);
  }
}

/**
 * The one mapping from the error family to WebSocket close codes, for failures
 * that end a graphql-ws connection (graphql-ws's own codes where it has one).
 */
export function websocketCloseCodeOf(code: ErrorCode): number {
  switch (code) {
    case 'BAD_REQUEST':
    case 'PAYLOAD_TOO_LARGE':
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'METHOD_NOT_ALLOWED':
    case 'NOT_FOUND':
    case 'CONFLICT':
      return 4400;
    case 'UNAUTHENTICATED':
      return 4401;
    case 'FORBIDDEN':
      return 4403;
    case 'RATE_LIMITED':
      return 4429;
    case 'QUEUE_FULL':
    case 'SERVICE_UNAVAILABLE':
      return 1013; // Try Again Later
    case 'INTERNAL':
      return 4500;
    default:
      throw new UnreachableCaseError(code);
  }
}

/** Thrown from an exhaustive switch's default branch: the compiler proves it unreachable. */
class UnreachableCaseError extends Error {
  constructor(value: never) {
    super(`Unreachable case: ${JSON.stringify(value)}`);
  }
}
