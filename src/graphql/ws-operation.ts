import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type ExecutionArgs,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';
import { MessageType } from 'graphql-ws';
import { queryLimitRules, refuseQueryText, type QueryLimits } from './limits.js';
import { textChangedByParsing } from '../ingest/json-text.js';

/** What a graphql-ws `subscribe` message carries (graphql-ws has already checked its shape). */
export interface SubscribePayload {
  query: string;
  operationName?: string | null | undefined;
  variables?: Record<string, unknown> | null | undefined;
}

/**
 * Parses, validates and resolves the operation of one `subscribe` message the
 * way Apollo does over HTTP, so a client sees the same `extensions.code` on
 * either transport: GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED (also for
 * the query limits and disabled introspection), OPERATION_RESOLUTION_FAILURE,
 * BAD_USER_INPUT for variables, QUERY_TOO_LARGE before parsing. Without
 * introspection, schema details are hidden too: no "Did you mean …?" hints.
 *
 * Returns the execution arguments, or the errors to answer that operation
 * with (an `error` message for its id; the connection stays).
 */
export function createOperationPreparer(options: {
  schema: GraphQLSchema;
  limits: QueryLimits;
  introspection: boolean;
}) {
  const { schema, limits, introspection } = options;
  const hideSuggestions = !introspection;
  const rules: ValidationRule[] = [
    ...specifiedRules,
    ...queryLimitRules(limits),
    ...(introspection ? [] : [NoSchemaIntrospectionCustomRule]),
  ];

  return (payload: SubscribePayload): ExecutionArgs | GraphQLError[] => {
    const refused = refuseQueryText(payload.query, limits);
    if (refused) return [withCode(refused, String(refused.extensions['code']))];
    let document;
    try {
      document = parse(payload.query);
    } catch (error) {
      if (error instanceof GraphQLError) return [withCode(error, 'GRAPHQL_PARSE_FAILED')];
      throw error;
    }
    const invalid = validate(schema, document, rules, { hideSuggestions, maxErrors: limits.maxErrors });
    if (invalid.length > 0) return invalid.map((error) => withCode(error, 'GRAPHQL_VALIDATION_FAILED'));

    const operationName = payload.operationName ?? undefined;
    const operation = getOperationAST(document, operationName);
    if (!operation) {
      const message =
        operationName === undefined
          ? 'Must provide operation name if query contains multiple operations.'
          : `Unknown operation named "${operationName}".`;
      return [new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } })];
    }
    // Coerced here, as execution would, so bad variables are an `error` message like Apollo's 400.
    const variableValues = payload.variables ?? {};
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variableValues, {
      hideSuggestions,
    });
    if (coerced.errors) return coerced.errors.map((error) => withCode(error, 'BAD_USER_INPUT'));
    return { schema, document, operationName, variableValues, hideSuggestions };
  };
}

export type OperationPreparer = ReturnType<typeof createOperationPreparer>;

/** The same error with a code (Apollo's wording of where it failed); `http` is HTTP's business only. */
function withCode(error: GraphQLError, code: string): GraphQLError {
  const { http: _http, ...extensions } = error.extensions;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...extensions, code },
  });
}

/**
 * What a client may send. graphql-ws's parser accepts every message type and
 * its server throws on the server's own (a 4500 for a protocol error), so
 * those are refused here as the bad requests they are.
 */
const CLIENT_MESSAGES: ReadonlySet<unknown> = new Set([
  MessageType.ConnectionInit,
  MessageType.Ping,
  MessageType.Pong,
  MessageType.Subscribe,
  MessageType.Complete,
]);

/** Whether a frame is a message a client may send; anything else (bad JSON too) is a protocol error. */
export function isClientMessage(text: string): boolean {
  try {
    const message: unknown = JSON.parse(text);
    return (
      typeof message === 'object' &&
      message !== null &&
      CLIENT_MESSAGES.has((message as { type?: unknown }).type)
    );
  } catch {
    return false;
  }
}

/**
 * The error frame of a subscribe message whose JSON text parsing would change
 * (numbers a double cannot hold, repeated keys), as over HTTP: refused as that
 * operation's error rather than run on altered variables.
 */
export function refusalOfChangedText(text: string): string | undefined {
  if (!text.includes('"subscribe"')) return undefined;
  let message: { id?: unknown; type?: unknown };
  try {
    message = JSON.parse(text) as { id?: unknown; type?: unknown };
  } catch {
    return undefined; // graphql-ws answers malformed messages itself
  }
  if (message.type !== 'subscribe' || typeof message.id !== 'string') return undefined;
  const problems = textChangedByParsing(text, message);
  if (problems.length === 0) return undefined;
  const summary = problems.map((problem) => `${problem.field} ${problem.message}`).join('; ');
  return JSON.stringify({
    id: message.id,
    type: 'error',
    payload: [
      {
        message: `JSON that would not be stored as sent: ${summary}`,
        extensions: { code: 'BAD_USER_INPUT', fields: problems },
      },
    ],
  });
}
