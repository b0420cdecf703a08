import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLFormattedError, GraphQLSchema } from 'graphql';
import { AppError, graphqlCodeOf } from '../errors.js';
import { toAppError } from '../to-app-error.js';
import type { Route, RouteContext, RouteResult } from '../http/server.js';
import { isDatabaseUnavailable } from '../failure-class.js';
import type { Logger } from '../observability/logger.js';
import { presentedKey } from '../security/authenticate.js';
import { createContextFunction, type GraphQLContext, type GraphQLServices } from './context.js';
import { DEFAULT_QUERY_LIMITS, queryLimitRules, refuseQueryText, type QueryLimits } from './limits.js';
import { resolvers } from './resolvers.js';

const SCHEMA_DIR = fileURLToPath(new URL('./schema/', import.meta.url));

/** The SDL, from the `.graphql` files that codegen also reads. */
function loadTypeDefs(): string {
  return readdirSync(SCHEMA_DIR)
    .filter((file) => file.endsWith('.graphql'))
    .sort()
    .map((file) => readFileSync(path.join(SCHEMA_DIR, file), 'utf8'))
    .join('\n');
}

/** The one executable schema, served by Apollo over HTTP and by graphql-ws over WebSocket. */
export function createSchema(): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers });
}

/** GraphQL's "Did you mean …?" hint at the end of a message: it names parts of the schema. */
const SUGGESTION = / ?Did you mean(.+?)\?$/;

/**
 * What a client sees of an error: AppErrors keep their message and get their
 * code from the one mapping (an unreachable database is SERVICE_UNAVAILABLE); GraphQL's own errors (syntax, validation,
 * variables) pass through; anything else is an internal error whose message,
 * and any stack, stay in the logs.
 *
 * @param options.hideSuggestions drops "Did you mean …?" hints from GraphQL's own errors (with
 *   introspection off): Apollo's `hideSchemaDetailsFromClientErrors` covers validation only, not
 *   the coercion of variables.
 */
export function createFormatError(logger: Logger, options: { hideSuggestions?: boolean } = {}) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    let original = originalErrorOf(error);
    if (isDatabaseUnavailable(original)) original = toAppError(original);
    if (original instanceof AppError) {
      const extensions: Record<string, unknown> = { code: graphqlCodeOf(original.code) };
      if (original.problems.length > 0) extensions['fields'] = original.problems;
      if (original.retryAfterSeconds !== undefined)
        extensions['retryAfterSeconds'] = original.retryAfterSeconds;
      return { message: original.message, locations: formatted.locations, path: formatted.path, extensions };
    }
    const code = formatted.extensions?.['code'];
    if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR') {
      const { stacktrace: _stacktrace, ...extensions } = formatted.extensions ?? {};
      const message = options.hideSuggestions ? formatted.message.replace(SUGGESTION, '') : formatted.message;
      return { ...formatted, message, extensions };
    }
    // Apollo's persisted-query step refuses a malformed extensions.persistedQuery with an HTTP 400 but no code.
    const http = (error as { extensions?: { http?: { status?: unknown } } } | null)?.extensions?.http;
    if (original === error && typeof http?.status === 'number' && http.status >= 400 && http.status < 500)
      return { message: formatted.message, extensions: { code: 'BAD_REQUEST' } };
    logger.error({ err: original, path: formatted.path }, 'GraphQL operation failed');
    return {
      message: 'Internal server error.',
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    };
  };
}

/** The error a resolver threw, under the GraphQLError wrapping(s) execution added. */
function originalErrorOf(error: unknown): unknown {
  let current = error;
  while (current instanceof Error && 'originalError' in current && current.originalError instanceof Error) {
    current = current.originalError;
  }
  return current;
}

/**
 * Apollo Server 5 on our own `node:http` server: `/graphql` takes GET and POST
 * beside the REST routes, and authentication runs in the context function.
 * With introspection off (production), error messages keep schema details
 * to themselves too: no "Did you mean …?" hints.
 */
export async function createGraphQLRoutes(
  services: GraphQLServices,
  options: {
    schema: GraphQLSchema;
    logger: Logger;
    introspection: boolean;
    landingPage: boolean;
    limits?: QueryLimits;
  },
): Promise<{ routes: Route[]; stop(): Promise<void> }> {
  const limits = options.limits ?? DEFAULT_QUERY_LIMITS;
  const apollo = new ApolloServer<GraphQLContext>({
    schema: options.schema,
    introspection: options.introspection,
    hideSchemaDetailsFromClientErrors: !options.introspection,
    includeStacktraceInErrorResponses: false,
    // The process's own shutdown drains HTTP first and stops Apollo after; Apollo's
    // handler would stop early and re-raise the signal.
    stopOnTerminationSignals: false,
    formatError: createFormatError(options.logger, { hideSuggestions: !options.introspection }),
    validationRules: queryLimitRules(limits),
    validationOptions: { maxErrors: limits.maxErrors },
    plugins: options.landingPage ? [] : [ApolloServerPluginLandingPageDisabled()],
  });
  await apollo.start();
  const contextFor = createContextFunction(services);

  const handle = async (context: RouteContext): Promise<RouteResult> => {
    const { request, url } = context;
    const headers = new HeaderMap();
    for (const [name, value] of Object.entries(request.headers)) {
      if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const body = request.method === 'POST' ? await context.readJson() : undefined;
    const query =
      body && typeof body === 'object' && 'query' in body ? body.query : url.searchParams.get('query');
    // Text too long, too deeply nested or with too many selections is refused unparsed (refuseQueryText).
    const refused = typeof query === 'string' ? refuseQueryText(query, limits) : undefined;
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest: { method: request.method ?? 'GET', headers, search: url.search, body },
      context: async () => {
        // Apollo asks for the context before parsing: the key is checked and counted first, so a
        // refused document is a request like any other.
        const context = await contextFor(presentedKey(request.headers));
        if (refused) throw refused;
        return context;
      },
    });
    let text: string;
    if (response.body.kind === 'complete') {
      text = response.body.string;
    } else {
      text = '';
      for await (const chunk of response.body.asyncIterator) text += chunk;
    }
    return {
      status: response.status ?? 200,
      body: text,
      headers: Object.fromEntries(response.headers),
      raw: true,
    };
  };

  return {
    routes: [
      { method: 'GET', path: '/graphql', scope: null, authenticates: true, handle },
      { method: 'POST', path: '/graphql', scope: null, authenticates: true, handle },
    ],
    stop: () => apollo.stop(),
  };
}
