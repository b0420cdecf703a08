import { GraphQLError } from 'graphql';
import type { AnalyticsService } from '../analytics/analytics-service.js';
import { AppError, graphqlCodeOf, httpStatusOf } from '../errors.js';
import type { IngestService } from '../ingest/ingest-service.js';
import type { EventQueries } from '../query/event-queries.js';
import type { Authenticator, Principal, Scope } from '../security/authenticate.js';

/** What every resolver receives: who is calling, and the services it may use. */
export interface GraphQLContext {
  principal: Principal;
  ingest: IngestService;
  events: EventQueries;
  analytics: AnalyticsService;
  /** Counts a refusal for a missing scope (metrics). */
  onForbidden?: () => void;
}

export interface GraphQLServices {
  authenticator: Authenticator;
  ingest: IngestService;
  events: EventQueries;
  analytics: AnalyticsService;
  onForbidden?: () => void;
}

/**
 * Apollo's context function: authentication happens here, once per
 * operation, with the same `authenticate()` that guards REST. A missing or
 * unknown key ends the request with HTTP 401 before anything executes.
 */
export function createContextFunction(services: GraphQLServices) {
  return (presentedKey: string | undefined): GraphQLContext => {
    try {
      return {
        principal: services.authenticator.authenticate(presentedKey),
        ingest: services.ingest,
        events: services.events,
        analytics: services.analytics,
        onForbidden: services.onForbidden,
      };
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      throw new GraphQLError(error.message, {
        extensions: { code: graphqlCodeOf(error.code), http: { status: httpStatusOf(error.code) } },
      });
    }
  };
}

/** @throws AppError FORBIDDEN when the caller's key lacks `scope`. */
export function requireScope(context: GraphQLContext, scope: Scope): void {
  if (!context.principal.scopes.includes(scope)) {
    context.onForbidden?.();
    throw new AppError('FORBIDDEN', `This API key lacks the '${scope}' scope.`);
  }
}
