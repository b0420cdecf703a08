import fc from 'fast-check';
import {
  getIntrospectionQuery,
  OverlappingFieldsCanBeMergedRule,
  parse,
  specifiedRules,
  validate,
  visit,
  type ASTVisitor,
  type GraphQLError,
  type ValidationRule,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { DEFAULT_QUERY_LIMITS, queryLimitRules } from '../../src/graphql/limits.js';
import { maxWork, measureDocument } from '../../src/graphql/measure-document.js';
import { scanQueryText } from '../../src/graphql/scan-query-text.js';
import { createSchema } from '../../src/graphql/server.js';
import { fields, hostileDocuments } from '../support/hostile-documents.js';

const schema = createSchema();
const limits = DEFAULT_QUERY_LIMITS;
const WORK_BOUND = maxWork(limits);
const hostile = hostileDocuments(limits);
const unlimited = { maxSelections: Number.MAX_SAFE_INTEGER, maxNesting: Number.MAX_SAFE_INTEGER };

/** Field, FragmentSpread and InlineFragment nodes of the parsed text. */
function selectionNodes(query: string): number {
  let count = 0;
  const selection = () => void (count += 1);
  visit(parse(query), { Field: selection, FragmentSpread: selection, InlineFragment: selection });
  return count;
}

/** Valid documents in every syntax the scan reads: aliases, strings and block strings, comments, directives, fragments. */
const wellFormed = fc
  .array(
    fc.constantFrom(
      'events(first: 2, filter: { sessionId: "a } { ... b: c \\" d", eventTypes: [review_started] }) { nodes { id } }',
      'a: events(after: """ { x y ... on Query { z } \\""" ok """) { pageInfo { hasNextPage } }',
      '__typename @include(if: true) @skip(if: false)',
      '... on Query @include(if: true) { eventTypes { count } }',
      '... @skip(if: false) { t: __typename }',
      '...Frag',
      '...on_ion',
      '# { a b c } ... comment\n eventTypes { count }',
      'b : analytics(days: 7) { days }',
    ),
    { minLength: 1, maxLength: 40 },
  )
  .map(
    (parts) =>
      `query Q($n: Int = 5, $s: String = "{ x }") @cached { ${parts.join(',\n')} } ` +
      'fragment Frag on Query { __typename e: eventTypes { count } } fragment on_ion on Query { __typename }',
  );

/**
 * Validates as Apollo Server 5 does (one `validate()` with specifiedRules first,
 * then the configured rules), counting what graphql's own rules get to see:
 * the SelectionSet visits of OverlappingFieldsCanBeMergedRule, and every node
 * a rule placed just before the limit rules is handed.
 */
function validateCounting(query: string) {
  const seen = { overlappingSelectionSets: 0, nodesBeforeLimits: 0 };
  const countedOverlapping: ValidationRule = (context) => {
    const visitor = OverlappingFieldsCanBeMergedRule(context) as { SelectionSet(...args: unknown[]): void };
    return {
      SelectionSet(...args: unknown[]) {
        seen.overlappingSelectionSets += 1;
        return visitor.SelectionSet(...args);
      },
    } as ASTVisitor;
  };
  const nodeCounter: ValidationRule = () => ({
    enter() {
      seen.nodesBeforeLimits += 1;
    },
  });
  const rules = [
    ...specifiedRules.map((rule) => (rule === OverlappingFieldsCanBeMergedRule ? countedOverlapping : rule)),
    nodeCounter,
    ...queryLimitRules(limits),
  ];
  const errors: readonly GraphQLError[] = validate(schema, parse(query), rules);
  return { errors, seen };
}

describe('GraphQL documents are measured cheaply before graphql validates them', () => {
  it('refuses every hostile document under the size limit, naming the limit, within bounded work', () => {
    fc.assert(
      fc.property(hostile, ({ query, by }) => {
        const measured = measureDocument(parse(query), schema, limits);
        expect(measured.refusal && by).toContain(measured.refusal?.limit);
        expect(measured.work).toBeLessThanOrEqual(WORK_BOUND);
      }),
      { numRuns: 300 },
    );
  });

  it('ends validation at the refusal: no other rule visits a selection, OverlappingFieldsCanBeMerged never runs', () => {
    fc.assert(
      fc.property(hostile, ({ query, by }) => {
        const { errors, seen } = validateCounting(query);
        expect(errors).toHaveLength(1);
        expect(by).toContain(errors[0]?.extensions['limit']);
        expect(errors[0]?.message).toMatch(/limit/);
        expect(seen.overlappingSelectionSets).toBe(0);
        expect(seen.nodesBeforeLimits).toBe(1); // the document itself, entered before the measure
      }),
      { numRuns: 150 },
    );
  });

  it('bounds the work of measuring any document, refused or not', () => {
    const anyDocument = fc
      .tuple(hostile, fc.array(fields, { maxLength: 30 }))
      .map(([{ query }, extra]) => `${query} query Extra { ${extra.join(' ') || '__typename'} }`)
      .filter((query) => query.length <= limits.maxQueryLength);
    fc.assert(
      fc.property(anyDocument, (query) => {
        expect(measureDocument(parse(query), schema, limits).work).toBeLessThanOrEqual(WORK_BOUND);
      }),
      { numRuns: 200 },
    );
  });

  it('counts the selections of any text that parses from its characters, as the parser would', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          wellFormed,
          hostile.map(({ query }) => query),
        ),
        (query) => {
          expect(scanQueryText(query, unlimited).selections).toBe(selectionNodes(query));
        },
      ),
      { numRuns: 300 },
    );
    const introspection = getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true });
    expect(scanQueryText(introspection, unlimited).selections).toBe(selectionNodes(introspection));
  });

  it('refuses text before parsing past maxSelections, or nested past maxNesting where the parser overflows', () => {
    const fieldNames = `{ ${'a '.repeat(9000)}}`;
    expect(scanQueryText(fieldNames, limits)).toMatchObject({
      selections: limits.maxSelections + 1,
      refusal: { limit: 'maxSelections' },
    });
    const deep = `{ ${'a{'.repeat(50_000)}b${'}'.repeat(50_000)} }`;
    expect(() => parse(deep)).toThrow(RangeError);
    expect(scanQueryText(deep, limits).refusal?.limit).toBe('maxNesting');
    const deepValue = `{ events(filter: ${'['.repeat(5000)}1${']'.repeat(5000)}) { nodes { id } } }`;
    expect(scanQueryText(deepValue, limits).refusal?.message).toMatch(/nests brackets more than 128 deep/);
    expect(scanQueryText(getIntrospectionQuery(), limits).refusal).toBe(undefined);
  });

  it('refuses 450 repeated events fields (19 KB) as too many selections, before graphql compares any pair', () => {
    const query = `{ ${Array.from({ length: 450 }, () => 'events { nodes { id payload eventType } }').join('\n')} }`;
    expect(query.length).toBeLessThan(limits.maxQueryLength);
    const { errors, seen } = validateCounting(query);
    expect(errors.map((error) => error.message)).toEqual([
      expect.stringMatching(/more than 1000 selections .*the limit is 1000/),
    ]);
    expect(seen.overlappingSelectionSets).toBe(0);
  });

  it('refuses a field repeated past the limit at one response path, naming the path', () => {
    const query = `{ events { nodes { ${Array.from({ length: 11 }, () => 'payload').join(' ')} } } }`;
    const { refusal } = measureDocument(parse(query), schema, limits);
    expect(refusal?.limit).toBe('maxRepeats');
    expect(refusal?.message).toMatch(/`events\.nodes\.payload` is selected more than 10 times/);
  });

  it('counts repeats merged from fragments and inline fragments at the same path', () => {
    const fragments = Array.from(
      { length: 6 },
      (_, index) => `fragment E${index} on AuditEvent { id ... on AuditEvent { id } }`,
    );
    const spreads = fragments.map((_, index) => `...E${index}`).join(' ');
    const query = `{ events { nodes { ${spreads} } } } ${fragments.join(' ')}`;
    const { refusal } = measureDocument(parse(query), schema, limits);
    expect(refusal?.limit).toBe('maxRepeats');
    expect(refusal?.message).toMatch(/`events\.nodes\.id`/);
  });

  it('prices a list field without `first` at its default page size from the schema', () => {
    const tight = { ...limits, maxCost: 100 };
    const defaulted = measureDocument(parse('{ events { nodes { id } } }'), schema, tight);
    expect(defaulted.refusal?.message).toMatch(/at least 101 by `events\.nodes\.id`/);
    expect(measureDocument(parse('{ events(first: 1) { nodes { id } } }'), schema, tight).refusal).toBe(
      undefined,
    );
    const variable = measureDocument(
      parse('query($n: Int!) { events(first: $n) { nodes { id } } }'),
      schema,
      tight,
    );
    expect(variable.refusal?.limit).toBe('maxCost');
  });

  it('prices a backward page by `last` as a forward page by `first`', () => {
    const tight = { ...limits, maxCost: 100 };
    const big = measureDocument(parse('{ events(last: 1000) { nodes { id } } }'), schema, tight);
    expect(big.refusal?.message).toMatch(/at least 1001 by `events\.nodes`/);
    const variable = measureDocument(
      parse('query($n: Int) { events(last: $n) { nodes { id } } }'),
      schema,
      tight,
    );
    expect(variable.refusal?.limit).toBe('maxCost');
    expect(measureDocument(parse('{ events(last: 1) { nodes { id } } }'), schema, tight).refusal).toBe(
      undefined,
    );
  });

  it('accepts graphql’s standard introspection query, plain and with every option', () => {
    const queries = [
      getIntrospectionQuery(),
      getIntrospectionQuery({
        descriptions: true,
        specifiedByUrl: true,
        directiveIsRepeatable: true,
        schemaDescription: true,
        inputValueDeprecation: true,
        oneOf: true,
      }),
    ];
    for (const query of queries) {
      expect(validateCounting(query).errors).toEqual([]);
      expect(measureDocument(parse(query), schema, limits).refusal).toBe(undefined);
    }
  });

  it('leaves documents within the limits to graphql’s own rules', () => {
    const { errors, seen } = validateCounting('{ events { nodes { id } } nope }');
    expect(errors.map((error) => error.message)).toEqual([
      expect.stringMatching(/Cannot query field "nope" on type "Query"/),
    ]);
    expect(seen.overlappingSelectionSets).toBeGreaterThan(0);
  });

  it('terminates on fragment cycles and lets NoFragmentCyclesRule refuse them', () => {
    const { errors } = validateCounting(
      '{ ...A } fragment A on Query { ...B __typename } fragment B on Query { ...A }',
    );
    expect(errors.map((error) => error.message)).toContainEqual(
      expect.stringMatching(/Cannot spread fragment "A" within itself via "B"/),
    );
  });
});
