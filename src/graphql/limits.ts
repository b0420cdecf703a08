import {
  GraphQLError,
  Kind,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { getGraphQLRateLimiter, type Store } from 'graphql-rate-limit';
import type { GraphQLResolveInfo } from 'graphql';
import { AppError } from '../errors.js';

export interface QueryLimits {
  /** Longest query text accepted, in characters; checked before parsing. */
  maxQueryLength: number;
  maxDepth: number;
  maxAliases: number;
  /** Each field costs 1, multiplied by the page size (`first`, list lengths) of the lists around it. */
  maxCost: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxQueryLength: 20_000,
  maxDepth: 12,
  maxAliases: 30,
  maxCost: 50_000,
};

/**
 * Validation rules that refuse abusive documents before anything executes:
 * too deep, too many aliases, or too costly (nested pages multiply).
 */
export function queryLimitRules(limits: QueryLimits): ValidationRule[] {
  return [(context) => documentRule(context, limits)];
}

function documentRule(context: ValidationContext, limits: QueryLimits): ASTVisitor {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of context.getDocument().definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const refuse = (message: string, code: string) =>
    context.reportError(new GraphQLError(message, { extensions: { code, http: { status: 400 } } }));

  return {
    OperationDefinition(operation) {
      const measured = measure(operation.selectionSet, fragments, 1, 1, new Set());
      if (measured.depth > limits.maxDepth) {
        refuse(`Query depth ${measured.depth} exceeds the limit of ${limits.maxDepth}.`, 'QUERY_TOO_DEEP');
      }
      if (measured.aliases > limits.maxAliases) {
        refuse(
          `Query uses ${measured.aliases} aliases; the limit is ${limits.maxAliases}.`,
          'TOO_MANY_ALIASES',
        );
      }
      if (measured.cost > limits.maxCost) {
        refuse(`Query cost ${measured.cost} exceeds the limit of ${limits.maxCost}.`, 'QUERY_TOO_COSTLY');
      }
    },
  };
}

interface Measure {
  depth: number;
  aliases: number;
  cost: number;
}

/** Walks a selection set, following fragments (each once per path, so cycles end), summing cost. */
function measure(
  selectionSet: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  depth: number,
  multiplier: number,
  visiting: Set<string>,
): Measure {
  const total: Measure = { depth, aliases: 0, cost: 0 };
  const add = (inner: Measure) => {
    total.depth = Math.max(total.depth, inner.depth);
    total.aliases += inner.aliases;
    total.cost += inner.cost;
  };
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.alias) total.aliases += 1;
      total.cost += multiplier;
      if (selection.selectionSet) {
        add(
          measure(selection.selectionSet, fragments, depth + 1, multiplier * pageSize(selection), visiting),
        );
      }
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      add(measure(selection.selectionSet, fragments, depth, multiplier, visiting));
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || visiting.has(name)) continue;
      visiting.add(name);
      add(measure(fragment.selectionSet, fragments, depth, multiplier, visiting));
      visiting.delete(name);
    }
  }
  return total;
}

/** How many items a list field may return, from its literal `first` argument; variables count as the maximum page. */
function pageSize(field: FieldNode): number {
  const first = field.arguments?.find((argument) => argument.name.value === 'first');
  if (!first) return 1;
  if (first.value.kind === Kind.INT) return Math.max(1, Number(first.value.value));
  return 1000;
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
