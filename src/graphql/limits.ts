import { GraphQLError, type ASTVisitor, type ValidationContext, type ValidationRule } from 'graphql';
import { getGraphQLRateLimiter, type Store } from 'graphql-rate-limit';
import type { GraphQLResolveInfo } from 'graphql';
import { AppError } from '../errors.js';
import { measureDocument, type Refusal } from './measure-document.js';
import type { QueryLimits } from './query-limits.js';
import { scanQueryText } from './scan-query-text.js';

export { DEFAULT_QUERY_LIMITS, type QueryLimits } from './query-limits.js';

/**
 * Validation rules that refuse abusive documents before anything executes:
 * too deep (introspection measured apart, against its own bounds), too
 * many aliases, too costly (nested pages multiply), too many selections or
 * directives, or one field selected too often at one place.
 *
 * They must run in the same `validate()` call as graphql's specifiedRules
 * (as Apollo Server and the WebSocket path do, after them in the list): the
 * measure happens when the document is entered, before any other rule visits
 * a selection, and a refused document ends the whole validation there, since
 * a visitor that answers `null` for the root deletes it and the visit stops.
 * Otherwise OverlappingFieldsCanBeMergedRule, quadratic in repeated fields,
 * would still spend hundreds of milliseconds on a document refused here.
 *
 * Introspection has its own depth limit here; how its lists of types nest
 * (`fields { type { fields …`, multiplying what execution returns) is bounded
 * by graphql's MaxIntrospectionDepthRule, one of its specifiedRules in
 * graphql 16 ("Maximum introspection depth exceeded" at three lists deep).
 */
export function queryLimitRules(limits: QueryLimits): ValidationRule[] {
  return [(context) => documentRule(context, limits)];
}

function documentRule(context: ValidationContext, limits: QueryLimits): ASTVisitor {
  return {
    Document: {
      enter(document) {
        const { refusal } = measureDocument(document, context.getSchema(), limits);
        if (!refusal) return undefined;
        context.reportError(limitError(refusal));
        return null;
      },
    },
  };
}

/**
 * Refuses query text before it is parsed, once it is known to be too long, to
 * nest too deep, or to hold more selections than maxSelections (a scan of
 * its characters: see scanQueryText). Parsing is most of what refusing a
 * large document costs, and what the validation rules cannot spare.
 *
 * @returns the error to answer with, undefined when the text may be parsed:
 *   QUERY_TOO_LARGE (HTTP 413) over maxQueryLength; GRAPHQL_VALIDATION_FAILED
 *   (400, naming the limit) past maxNesting or maxSelections, as the
 *   validation rules answer the limits they check after parsing.
 */
export function refuseQueryText(query: string, limits: QueryLimits): GraphQLError | undefined {
  if (query.length > limits.maxQueryLength) {
    return new GraphQLError(`Query text exceeds ${limits.maxQueryLength} characters.`, {
      extensions: { code: 'QUERY_TOO_LARGE', http: { status: 413 } },
    });
  }
  const { refusal } = scanQueryText(query, limits);
  return refusal && limitError(refusal);
}

function limitError(refusal: Refusal): GraphQLError {
  return new GraphQLError(refusal.message, {
    extensions: { code: 'GRAPHQL_VALIDATION_FAILED', limit: refusal.limit, http: { status: 400 } },
  });
}

/**
 * Field-level limits (graphql-rate-limit) for expensive fields, per key, on
 * the shared limiter's store: analytics, large pages and batch mutations.
 */
export function createFieldLimiter(store: Store) {
  const limiter = getGraphQLRateLimiter({
    store,
    identifyContext: (context: { principal: { keyId: string } }) => context.principal.keyId,
  });
  return async (
    resolver: { parent: unknown; args: Record<string, unknown>; context: unknown; info: GraphQLResolveInfo },
    limit: { max: number; window: string },
  ): Promise<void> => {
    const refusal = await limiter(resolver, {
      ...limit,
      message: `Too many ${resolver.info.fieldName} requests`,
    });
    if (refusal) {
      throw new AppError(
        'RATE_LIMITED',
        `${refusal}: at most ${limit.max} per ${limit.window} per API key.`,
        {
          retryAfterSeconds: 60,
        },
      );
    }
  };
}

export type FieldLimiter = ReturnType<typeof createFieldLimiter>;
