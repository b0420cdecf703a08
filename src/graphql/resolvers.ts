import { Kind, type GraphQLResolveInfo } from 'graphql';
import { windowOf } from '../analytics/analytics-service.js';
import { AppError, badRequest, type FieldProblem } from '../errors.js';
import { encodeCursor, MAX_PAGE_SIZE } from '../query/event-queries.js';
import type {
  Resolvers,
  LogEventInput,
  EventFilter,
  ResolversParentTypes,
} from './generated/resolvers-types.js';
import { requireLive, subscriptionNeedsWebSocket } from './websocket.js';
import { isScope } from '../security/authenticate.js';
import { requireScope } from './context.js';
import { DateTimeScalar, JSONScalar } from './scalars.js';
import { integrityQueryResolvers } from './integrity-resolvers.js';

/** GraphQL input → the body `POST /log` takes, so both go through one validation. */
function toLogBody(input: LogEventInput): Record<string, unknown> {
  const body: Record<string, unknown> = {
    session_id: input.sessionId,
    event_type: input.eventType,
  };
  if (input.payload !== undefined && input.payload !== null) body['payload'] = input.payload;
  if (input.eventId !== undefined && input.eventId !== null) body['event_id'] = String(input.eventId);
  if (input.timestamp !== undefined && input.timestamp !== null) body['timestamp'] = input.timestamp;
  return body;
}

const INPUT_NAMES: Record<string, string> = {
  session_id: 'sessionId',
  event_type: 'eventType',
  event_id: 'eventId',
};

/** Field paths as GraphQL callers wrote them (`sessionId`, not `session_id`). */
function toInputProblems(problems: readonly FieldProblem[]): FieldProblem[] {
  return problems.map((problem) => {
    const [head = '', ...rest] = problem.field.split('.');
    return { ...problem, field: [INPUT_NAMES[head] ?? head, ...rest].join('.') };
  });
}

function toFilter(filter: EventFilter | null | undefined) {
  return {
    eventTypes: filter?.eventTypes ?? undefined,
    sessionId:
      filter?.sessionId === undefined || filter.sessionId === null ? undefined : String(filter.sessionId),
    from: filter?.from ? new Date(filter.from) : undefined,
    to: filter?.to ? new Date(filter.to) : undefined,
    payload: filter?.payload ?? undefined,
  };
}

/** Whether the caller wrote argument `name` (a literal, or a variable it set), rather than getting its default. */
function argumentGiven(info: GraphQLResolveInfo, name: string): boolean {
  const argument = info.fieldNodes[0]?.arguments?.find((candidate) => candidate.name.value === name);
  if (!argument) return false;
  if (argument.value.kind === Kind.VARIABLE) return info.variableValues[argument.value.name.value] != null;
  return argument.value.kind !== Kind.NULL;
}

/** Field-level limits per key, on top of the per-key request limit: the fields that cost the most. */
const LARGE_PAGE = 200;
const LARGE_PAGE_LIMIT = { max: 120, window: '1m' };
const ANALYTICS_LIMIT = { max: 120, window: '1m' };
const BATCH_LIMIT = { max: 600, window: '1m' };

type AuditEventEdgeParent = ResolversParentTypes['AuditEventEdge'];

/** What `Query.analytics` resolves to: each section is read only when selected. */
export interface AnalyticsParent {
  days: number;
}

export const resolvers: Resolvers = {
  DateTime: DateTimeScalar,
  JSON: JSONScalar,

  Query: {
    ...integrityQueryResolvers,
    async events(parent, args, context, info) {
      const { filter, after, last, before } = args;
      requireScope(context, 'read');
      // `first` has a default, so it counts as given with `last` only when the caller wrote it.
      const first = last == null || argumentGiven(info, 'first') ? args.first : undefined;
      if (Math.max(first ?? 0, last ?? 0) > LARGE_PAGE) {
        await context.limitField({ parent, args, context, info }, LARGE_PAGE_LIMIT);
      }
      const page = await context.events.connection(toFilter(filter), { first, after, last, before });
      return {
        edges: page.events.map((event) => ({ cursor: encodeCursor(event.seq), node: event })),
        nodes: page.events,
        pageInfo: {
          hasNextPage: page.hasNextPage,
          hasPreviousPage: page.hasPreviousPage,
          startCursor: page.startCursor,
          endCursor: page.endCursor,
        },
      };
    },
    async event(_parent, { id }, context) {
      requireScope(context, 'read');
      return context.events.get(String(id));
    },
    async eventTypes(_parent, _args, context) {
      requireScope(context, 'read');
      return context.events.eventTypes();
    },
    async apiKeys(_parent, _args, context) {
      requireScope(context, 'admin');
      return context.apiKeys.list();
    },
    async deadLetters(_parent, { limit }, context) {
      requireScope(context, 'admin');
      return context.deadLetters.list(limit);
    },
    async analytics(parent, args, context, info) {
      const { days } = args;
      requireScope(context, 'read');
      await context.limitField({ parent, args, context, info }, ANALYTICS_LIMIT);
      windowOf(days, new Date()); // refuses a bad `days` here, once, rather than in each section
      return { days };
    },
  },

  ApiKey: {
    scopes: (key) => key.scopes.filter(isScope),
  },

  LlmUsageStats: {
    __resolveType: (stats) => ('model' in stats ? 'LlmModelAnalytics' : 'LlmTotals'),
  },

  Analytics: {
    usage: ({ days }, _args, context) => context.analytics.usage(days),
    llm: ({ days }, _args, context) => context.analytics.llm(days),
    performance: ({ days }, _args, context) => context.analytics.performance(days),
  },

  Subscription: {
    eventLogged: {
      subscribe(_parent, { filter, after }, context) {
        requireScope(context, 'read');
        return requireLive(context.live).subscribe(toFilter(filter), after ?? undefined);
      },
      // The fanout executes the selection with the edge as the root value (src/graphql/websocket.ts);
      // over HTTP there is no root value, and the operation is refused.
      resolve(root: { eventLogged?: AuditEventEdgeParent } | undefined) {
        if (!root?.eventLogged) throw subscriptionNeedsWebSocket();
        return root.eventLogged;
      },
    },
  },

  Mutation: {
    async logEvent(_parent, { input }, context) {
      requireScope(context, 'ingest');
      try {
        const accepted = await context.ingest.accept(toLogBody(input), context.principal);
        return { eventId: accepted.id };
      } catch (error) {
        if (error instanceof AppError && error.code === 'BAD_REQUEST') {
          throw badRequest(
            error.message.replace(
              /\b(session_id|event_type|event_id)\b/g,
              (name) => INPUT_NAMES[name] ?? name,
            ),
            toInputProblems(error.problems),
          );
        }
        throw error;
      }
    },
    async createApiKey(_parent, { input }, context) {
      requireScope(context, 'admin');
      return context.apiKeys.create({
        name: input.name,
        scopes: [...input.scopes],
        rateLimitPerMinute: input.rateLimitPerMinute ?? null,
      });
    },
    async revokeApiKey(_parent, { id }, context) {
      requireScope(context, 'admin');
      return context.apiKeys.revoke(String(id));
    },
    async replayDeadLetters(_parent, { ids }, context) {
      requireScope(context, 'admin');
      return context.deadLetters.replay(ids.map(String));
    },
    async logEvents(parent, args, context, info) {
      const { inputs } = args;
      requireScope(context, 'ingest');
      await context.limitField({ parent, args, context, info }, BATCH_LIMIT);
      if (inputs.length === 0 || inputs.length > MAX_PAGE_SIZE) {
        throw badRequest(`inputs: a batch must hold 1 to ${MAX_PAGE_SIZE} events`, [
          { field: 'inputs', message: `must hold 1 to ${MAX_PAGE_SIZE} events` },
        ]);
      }
      const results = await context.ingest.acceptEach(inputs.map(toLogBody), context.principal);
      const items = results.map((result, index) =>
        result.ok
          ? { index, eventId: result.id, problems: null }
          : { index, eventId: null, problems: toInputProblems(result.problems) },
      );
      const accepted = items.filter((item) => item.eventId !== null).length;
      return { accepted, rejected: items.length - accepted, items };
    },
  },
};
