/** How much a GraphQL document may ask for; checked before anything executes (src/graphql/limits.ts). */
export interface QueryLimits {
  /** Longest query text accepted, in characters; checked before parsing. */
  maxQueryLength: number;
  /** Brackets (`{`, `[`, `(`) open at once; checked before parsing, whose recursion would overflow. */
  maxNesting: number;
  /** Depth of data fields; fields under `__schema` or `__type` count against maxIntrospectionDepth instead. */
  maxDepth: number;
  /**
   * Depth under introspection's entry fields, `__schema` or `__type` counted as 1. graphql's
   * standard introspection query is 15 deep (its `ofType` chain); graphql's
   * MaxIntrospectionDepthRule (one of its specifiedRules) refuses lists of types nested three deep.
   */
  maxIntrospectionDepth: number;
  maxAliases: number;
  /** Each field costs 1, multiplied by the page size (`first`, `limit`, or their default) of the lists around it. */
  maxCost: number;
  /** Fields, fragment spreads and inline fragments in the document, a fragment counted at each spread. */
  maxSelections: number;
  /** Directives written in the document. */
  maxDirectives: number;
  /** Arguments written in the document, of fields and directives (not the fields of input values). */
  maxArguments: number;
  /** Argument values written, each item of a list and field of an object counted (variables' values are not). */
  maxValues: number;
  /** Variable definitions, all operations together. */
  maxVariables: number;
  /** Operations in one document. */
  maxOperations: number;
  /** Fragment definitions. */
  maxFragments: number;
  /** Selections landing on one response path: a field repeated, or the same field in fragments merging there. */
  maxRepeats: number;
  /** Fields selected that their type does not have (each an error graphql's rules would collect and report). */
  maxUnknownFields: number;
  /**
   * Errors graphql's validation reports before it stops (its `maxErrors`): each error's
   * locations scan the whole text, so a hundred errors in 20,000 characters cost milliseconds.
   */
  maxErrors: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxQueryLength: 20_000,
  maxNesting: 128,
  maxDepth: 12,
  maxIntrospectionDepth: 20,
  maxAliases: 30,
  maxCost: 50_000,
  maxSelections: 1000,
  maxDirectives: 50,
  maxArguments: 200,
  maxValues: 2000,
  maxVariables: 100,
  maxOperations: 20,
  maxFragments: 100,
  maxRepeats: 10,
  maxUnknownFields: 10,
  maxErrors: 10,
};
