import { HeaderMap } from '@apollo/server';
import { GraphQLError } from 'graphql';
import type { RequestLimiter } from '../security/rate-limit.js';
import type { FieldLimiter } from './limits.js';
import type { AnalyticsService } from '../analytics/analytics-service.js';
import type { ApiKeyService } from '../security/api-keys.js';
import type { IntegrityService } from '../integrity/service.js';
import { graphqlCodeOf, httpStatusOf } from '../errors.js';
import { toAppError } from '../to-app-error.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { EventFilter, EventQueries } from '../query/event-queries.js';
import { requireScopeOf, type Authenticator, type Principal, type Scope } from '../security/authenticate.js';
import type { DeadLetterService } from '../ingest/dead-letters.js';

/** One WebSocket operation's access to the live feed (src/graphql/websocket.ts). */
export interface LiveOperation {
  /** @throws AppError for a bad filter or cursor, or past the subscription limits. */
  subscribe(filter: EventFilter, after: string | undefined): AsyncIterableIterator<never>;
}

/** What the GraphQL adapters are built with: the services resolvers use, and how to authenticate. */
export interface GraphQLServices {
  authenticator: Authenticator;
  limitRequest?: RequestLimiter;
  ingest: IngestService;
  events: EventQueries;
  analytics: AnalyticsService;
  apiKeys: ApiKeyService;
  deadLetters: DeadLetterService;
  /** Tamper evidence (src/integrity); absent where a process serves no integrity fields. */
  integrity?: IntegrityService | undefined;
  /** Per-key limits on expensive fields (graphql-rate-limit). */
  limitField: FieldLimiter;
  /** Counts a refusal for a missing scope (metrics). */
  onForbidden?: () => void;
}

/** What every resolver receives: who is calling, and the services it may use. */
export interface GraphQLContext extends Omit<GraphQLServices, 'authenticator' | 'limitRequest'> {
  principal: Principal;
  /** Present on WebSocket operations only: what `eventLogged` subscribes through. */
  live?: LiveOperation;
}

/**
 * Apollo's context function: authentication happens here, once per
 * operation, with the same `authenticate()` that guards REST. A missing or
 * unknown key ends the request with HTTP 401 before anything executes.
 */
export function createContextFunction(services: GraphQLServices) {
  return async (presentedKey: string | undefined): Promise<GraphQLContext> => {
    try {
      const principal = await services.authenticator.authenticate(presentedKey);
      await services.limitRequest?.(principal);
      return contextOf(services, principal);
    } catch (caught) {
      const error = toAppError(caught);
      if (error.code === 'INTERNAL') throw caught;
      const headers = new HeaderMap(Object.entries(error.headers));
      if (error.retryAfterSeconds !== undefined) headers.set('retry-after', String(error.retryAfterSeconds));
      throw new GraphQLError(error.message, {
        extensions: { code: graphqlCodeOf(error.code), http: { status: httpStatusOf(error.code), headers } },
      });
    }
  };
}

/** The context of one operation by an authenticated caller, over HTTP or WebSocket. */
export function contextOf(
  services: GraphQLServices,
  principal: Principal,
  live?: LiveOperation,
): GraphQLContext {
  return {
    principal,
    ingest: services.ingest,
    events: services.events,
    analytics: services.analytics,
    apiKeys: services.apiKeys,
    deadLetters: services.deadLetters,
    integrity: services.integrity,
    limitField: services.limitField,
    onForbidden: services.onForbidden,
    live,
  };
}

/** @throws AppError FORBIDDEN when the caller's key lacks `scope`. */
export function requireScope(context: GraphQLContext, scope: Scope): void {
  requireScopeOf(context.principal, scope, context.onForbidden);
}
