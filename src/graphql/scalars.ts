import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped, type ValueNode } from 'graphql';
import { inexactNumberMessage, isExactNumberLiteral } from '../ingest/json-text.js';
import { INSTANT_RANGE, isStorableInstant } from '../events/storable.js';

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

function parseDateTime(value: unknown): string {
  if (typeof value !== 'string' || !ISO_DATE_TIME.test(value) || Number.isNaN(Date.parse(value))) {
    throw new GraphQLError(
      'DateTime must be an ISO 8601 date-time with a time zone, e.g. 2026-11-26T15:00:00Z',
      {
        extensions: { code: 'BAD_USER_INPUT' },
      },
    );
  }
  if (!isStorableInstant(Date.parse(value))) {
    // Year 0 or 10000 once in UTC (an offset can carry 9999-12-31 over): no audit event lives there,
    // and the database layers format such years in ways PostgreSQL refuses.
    throw new GraphQLError(`DateTime ${INSTANT_RANGE}`, { extensions: { code: 'BAD_USER_INPUT' } });
  }
  return value;
}

export const DateTimeScalar = new GraphQLScalarType<string, string>({
  name: 'DateTime',
  // The executable schema takes a resolver scalar's description over the SDL's.
  description: 'An instant, as an ISO 8601 string in UTC (e.g. 2026-11-26T15:00:00.000Z).',
  serialize: (value) => {
    if (value instanceof Date) return value.toISOString();
    if (typeof value === 'string') return new Date(value).toISOString();
    throw new GraphQLError('DateTime cannot represent this value');
  },
  parseValue: parseDateTime,
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING)
      throw new GraphQLError('DateTime must be a string', { extensions: { code: 'BAD_USER_INPUT' } });
    return parseDateTime(ast.value);
  },
});

export const JSONScalar = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  description: 'Any JSON value; event payloads are JSON objects.',
  serialize: (value) => value,
  parseValue: (value) => value,
  parseLiteral: (ast, variables) => {
    refuseInexactNumbers(ast);
    return valueFromASTUntyped(ast, variables);
  },
});

/** A literal's numbers as JavaScript would change them (`1e400`, `12345678901234567890`) are refused, not stored altered. */
function refuseInexactNumbers(ast: ValueNode): void {
  if ((ast.kind === Kind.INT || ast.kind === Kind.FLOAT) && !isExactNumberLiteral(ast.value))
    throw new GraphQLError(`JSON ${inexactNumberMessage(ast.value)}`, {
      extensions: { code: 'BAD_USER_INPUT' },
    });
  if (ast.kind === Kind.LIST) for (const value of ast.values) refuseInexactNumbers(value);
  if (ast.kind === Kind.OBJECT) for (const field of ast.fields) refuseInexactNumbers(field.value);
}
