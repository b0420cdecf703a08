import fc from 'fast-check';
import type { QueryLimits } from '../../src/graphql/limits.js';
import type { LimitName } from '../../src/graphql/measure-document.js';

/** A hostile GraphQL document and the limits it may be refused by (whichever its shape passes first). */
export interface HostileDocument {
  query: string;
  by: LimitName[];
}

/** Selections the schema has, from a leaf to a page. */
export const fields = fc.constantFrom(
  'events { nodes { id } }',
  'eventTypes { count }',
  '__typename',
  'events(first: 1) { pageInfo { hasNextPage } }',
  'analytics { days }',
);

/**
 * Documents built to make validation expensive (field, argument and variable
 * duplication; alias, directive, value and operation overloading; fragments
 * doubling at each level, long chains and cycles; deep nesting), all under the
 * size limit.
 */
export function hostileDocuments(limits: QueryLimits): fc.Arbitrary<HostileDocument> {
  return fc
    .oneof(
      // Field duplication: one field over and over in one selection set.
      fc.tuple(fields, fc.integer({ min: limits.maxRepeats + 1, max: 2000 })).map(([field, count]) => ({
        query: `{ ${Array.from({ length: count }, () => field).join(' ')} }`,
        by: ['maxRepeats', 'maxSelections', 'maxArguments', 'maxValues'] as LimitName[],
      })),
      // Distinct unknown fields: each name once, so no path repeats, and every one an error to collect.
      fc.integer({ min: limits.maxUnknownFields + 1, max: 990 }).map((count) => ({
        query: `{ ${Array.from({ length: count }, (_, index) => `f${index}`).join(' ')} }`,
        by: ['maxUnknownFields', 'maxSelections'] as LimitName[],
      })),
      // Alias overloading: every copy under its own name.
      fc.tuple(fields, fc.integer({ min: limits.maxAliases + 1, max: 1500 })).map(([field, count]) => ({
        query: `{ ${Array.from({ length: count }, (_, index) => `a${index}: ${field}`).join(' ')} }`,
        by: ['maxAliases', 'maxSelections', 'maxArguments', 'maxValues'] as LimitName[],
      })),
      // Directive overloading, on one field or spread over several.
      fc
        .tuple(fc.integer({ min: limits.maxDirectives + 1, max: 1000 }), fc.integer({ min: 1, max: 5 }))
        .map(([count, perField]) => {
          const directive = '@include(if: true)';
          const parts = Array.from(
            { length: Math.ceil(count / perField) },
            (_, index) =>
              `a${index}: __typename ${Array.from({ length: perField }, () => directive).join(' ')}`,
          );
          return { query: `{ ${parts.join(' ')} }`, by: ['maxDirectives', 'maxAliases'] as LimitName[] };
        }),
      // Deep fragments: each spreads the next one 2-4 times, so expansion doubles (or more) per level.
      fc
        .tuple(fc.integer({ min: 4, max: 200 }), fc.integer({ min: 2, max: 4 }), fields)
        .map(([levels, spreads, field]) => {
          const chain = Array.from(
            { length: levels },
            (_, index) =>
              `fragment F${index} on Query { ${Array.from({ length: spreads }, () => `...F${index + 1}`).join(' ')} }`,
          );
          return {
            query: `query { ...F0 } ${chain.join(' ')} fragment F${levels} on Query { ${field} }`,
            by: ['maxRepeats', 'maxSelections', 'maxFragments'] as LimitName[],
          };
        }),
      // Fragment cycles carrying repeated fields: every fragment of the cycle is reached from C0, so
      // its copies land on one path more than maxRepeats times; the repeats are refused first.
      fc
        .tuple(
          fc.integer({ min: 2, max: 30 }),
          fields,
          fc.integer({ min: Math.ceil((limits.maxRepeats + 1) / 2), max: 20 }),
        )
        .map(([length, field, copies]) => {
          const cycle = Array.from(
            { length },
            (_, index) =>
              `fragment C${index} on Query { ...C${(index + 1) % length} ...C${(index + 2) % length} ` +
              `${Array.from({ length: copies }, () => field).join(' ')} }`,
          );
          return {
            query: `{ ...C0 } ${cycle.join(' ')}`,
            by: ['maxRepeats', 'maxSelections', 'maxFragments', 'maxArguments', 'maxValues'] as LimitName[],
          };
        }),
      // Argument duplication, and arguments the field does not have (graphql names every duplicate in one error).
      fc
        .tuple(fc.integer({ min: limits.maxArguments + 1, max: 2500 }), fc.boolean())
        .map(([count, duplicate]) => ({
          query: `{ events(${Array.from({ length: count }, (_, index) => (duplicate ? 'first: 1' : `x${index}: 1`)).join(' ')}) { nodes { id } } }`,
          by: ['maxArguments'] as LimitName[],
        })),
      // Value overloading: long lists and wide objects in an argument (short values, to fit many).
      fc.tuple(fc.integer({ min: limits.maxValues + 1, max: 9000 }), fc.boolean()).map(([count, list]) => ({
        query: list
          ? `{ events(filter: { eventTypes: [${'1 '.repeat(count)}] }) { nodes { id } } }`
          : `{ events(filter: { ${'s: 1 '.repeat(count)} }) { nodes { id } } }`,
        by: ['maxValues'] as LimitName[],
      })),
      // Variable duplication and overloading.
      fc
        .tuple(fc.integer({ min: limits.maxVariables + 1, max: 2500 }), fc.boolean())
        .map(([count, duplicate]) => ({
          query: `query(${Array.from({ length: count }, (_, index) => (duplicate ? '$a: Int' : `$a${index}: Int`)).join(' ')}) { __typename }`,
          by: ['maxVariables'] as LimitName[],
        })),
      // Many operations, each walked again by graphql's variable rules.
      fc
        .tuple(fc.integer({ min: limits.maxOperations + 1, max: 1500 }), fc.boolean())
        .map(([count, named]) => ({
          query: Array.from(
            { length: count },
            (_, index) => `${named ? `query q${index}` : ''}{ __typename }`,
          ).join(' '),
          by: ['maxOperations', 'maxSelections'] as LimitName[],
        })),
      // Long fragment chains and cycles: many definitions, one error naming every fragment of a cycle.
      fc
        .tuple(fc.integer({ min: limits.maxFragments + 1, max: 800 }), fc.boolean())
        .map(([count, cycle]) => ({
          query:
            `{ ...F0 } ${Array.from({ length: count }, (_, index) => `fragment F${index} on Query { ...F${cycle ? (index + 1) % count : index + 1} }`).join(' ')}` +
            (cycle ? '' : ` fragment F${count} on Query { __typename }`),
          by: ['maxFragments'] as LimitName[],
        })),
      // Deep nesting: real lists of lists (introspection), or names the schema does not have.
      fc.integer({ min: limits.maxDepth + 1, max: 1500 }).chain((levels) =>
        fc.constantFrom(
          {
            query: `{ __schema { types { ${'fields { type { '.repeat(levels)} name ${'} } '.repeat(levels)} } } }`,
            by: ['maxIntrospectionDepth', 'maxSelections', 'maxNesting'] as LimitName[],
          },
          {
            query: `{ ${'a { '.repeat(levels)} b ${'} '.repeat(levels)} }`,
            by: ['maxDepth', 'maxSelections', 'maxNesting'] as LimitName[],
          },
        ),
      ),
    )
    .filter(({ query }) => query.length <= limits.maxQueryLength);
}
