import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { createFormatError } from '../../src/graphql/server.js';
import { createLogger } from '../../src/observability/logger.js';

const formatError = createFormatError(createLogger({ level: 'silent' }));
const asResolverError = (original: Error) =>
  new GraphQLError(original.message, { originalError: original, path: ['events'] });

describe('GraphQL error formatting', () => {
  it('hides the message and stack of an unexpected error behind INTERNAL_SERVER_ERROR', () => {
    const internal = new Error('password authentication failed for user "auditgraph" at 10.0.0.5');
    const formatted = formatError(
      { message: internal.message, extensions: { stacktrace: ['at x'] } },
      asResolverError(internal),
    );
    expect(formatted).toEqual({
      message: 'Internal server error.',
      path: undefined,
      locations: undefined,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(JSON.stringify(formatted)).not.toContain('password');
  });

  it('keeps an AppError’s message and maps its code, fields and retry delay', () => {
    const error = new AppError('QUEUE_FULL', 'The ingest queue is full; retry later.', {
      retryAfterSeconds: 1,
    });
    expect(formatError({ message: error.message, path: ['logEvent'] }, asResolverError(error))).toEqual({
      message: 'The ingest queue is full; retry later.',
      path: ['logEvent'],
      locations: undefined,
      extensions: { code: 'QUEUE_FULL', retryAfterSeconds: 1 },
    });
  });

  it("passes GraphQL's own errors through without a stack", () => {
    const formatted = formatError(
      {
        message: 'Syntax Error: Unexpected Name',
        extensions: { code: 'GRAPHQL_PARSE_FAILED', stacktrace: ['at parse'] },
      },
      new GraphQLError('Syntax Error: Unexpected Name'),
    );
    expect(formatted).toEqual({
      message: 'Syntax Error: Unexpected Name',
      extensions: { code: 'GRAPHQL_PARSE_FAILED' },
    });
  });
});
