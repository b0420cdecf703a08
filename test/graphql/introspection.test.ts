import fc from 'fast-check';
import {
  buildClientSchema,
  getIntrospectionQuery,
  MaxIntrospectionDepthRule,
  parse,
  specifiedRules,
  validate,
  type IntrospectionQuery,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QUERY_LIMITS, queryLimitRules } from '../../src/graphql/limits.js';
import { measureDocument } from '../../src/graphql/measure-document.js';
import { createSchema } from '../../src/graphql/server.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { connectLive, type LiveConnection } from '../support/live-client.js';

const schema = createSchema();
const limits = DEFAULT_QUERY_LIMITS;

/** What graphql-inspector (and GraphiQL, graphql-codegen from a URL) send: graphql-js's query with every option. */
const INSPECTOR_QUERY = getIntrospectionQuery({
  descriptions: true,
  specifiedByUrl: true,
  directiveIsRepeatable: true,
  schemaDescription: true,
  inputValueDeprecation: true,
});
const STANDARD_QUERIES = [getIntrospectionQuery(), INSPECTOR_QUERY];

/** The standard query with its `ofType` chain 10 levels longer at its deepest: 25 deep instead of 15. */
const TEN_PAST_STANDARD = ((standard: string) => {
  const innermost = standard.lastIndexOf('ofType {') + 'ofType {'.length;
  const longer = `${'ofType { '.repeat(10)} name ${'} '.repeat(10)}`;
  return `${standard.slice(0, innermost)} ${longer}${standard.slice(innermost)}`;
})(getIntrospectionQuery());

const errorsOf = (query: string) =>
  validate(schema, parse(query), [...specifiedRules, ...queryLimitRules(limits)]).map(
    (error) => error.message,
  );

/**
 * Introspection's object fields by the type they are on: the type they return and whether
 * graphql's MaxIntrospectionDepthRule counts them as a list of types.
 */
const INTROSPECTION_FIELDS: Record<string, Array<{ name: string; type: string; list?: true }>> = {
  __Schema: [
    { name: 'types', type: '__Type' },
    { name: 'queryType', type: '__Type' },
    { name: 'directives', type: '__Directive' },
  ],
  __Type: [
    { name: 'fields', type: '__Field', list: true },
    { name: 'interfaces', type: '__Type', list: true },
    { name: 'possibleTypes', type: '__Type', list: true },
    { name: 'inputFields', type: '__InputValue', list: true },
    { name: 'ofType', type: '__Type' },
    { name: 'enumValues', type: '__EnumValue' },
  ],
  __Field: [
    { name: 'type', type: '__Type' },
    { name: 'args', type: '__InputValue' },
  ],
  __InputValue: [{ name: 'type', type: '__Type' }],
  __Directive: [{ name: 'args', type: '__InputValue' }],
  __EnumValue: [],
};

interface Nested {
  query: string;
  /** Depth of its deepest field (`__typename`), `__schema` or `__type` counted as 1. */
  depth: number;
  /** Lists of types nested in one another (what MaxIntrospectionDepthRule counts). */
  lists: number;
}

/** A path of introspection fields from `__schema` or `__type`, the choices picking one field at each level. */
function nested(fromSchema: boolean, choices: number[]): Nested {
  let type = fromSchema ? '__Schema' : '__Type';
  const names = [fromSchema ? '__schema' : '__type(name: "Query")'];
  let lists = 0;
  for (const choice of choices) {
    const options = INTROSPECTION_FIELDS[type] ?? [];
    const field = options[choice % Math.max(1, options.length)];
    if (!field) break;
    names.push(field.name);
    if (field.list) lists += 1;
    type = field.type;
  }
  const query = `{ ${names.join(' { ')} { __typename ${'} '.repeat(names.length)}}`;
  return { query, depth: names.length + 1, lists };
}

const nestedIntrospection = fc
  .tuple(fc.boolean(), fc.array(fc.nat(5), { minLength: 0, maxLength: 40 }))
  .map(([fromSchema, choices]) => nested(fromSchema, choices));

/** Refused iff deeper than maxIntrospectionDepth, or three lists of types deep (graphql's rule). */
const refusedByBound = ({ depth, lists }: Nested) => depth > limits.maxIntrospectionDepth || lists >= 3;

describe('introspection is measured apart from data queries', () => {
  it('passes graphql-js’s standard introspection query and graphql-inspector’s', () => {
    for (const query of STANDARD_QUERIES) expect(errorsOf(query)).toEqual([]);
  });

  it('refuses an introspection query nested 10 levels past the standard one, naming the limit', () => {
    const { refusal } = measureDocument(parse(TEN_PAST_STANDARD), schema, limits);
    expect(refusal?.limit).toBe('maxIntrospectionDepth');
    expect(refusal?.message).toMatch(
      /^Introspection depth exceeds the limit of 20: `__schema\.types\.fields.*` is 21/,
    );
    // Lists of types within the depth are graphql's MaxIntrospectionDepthRule's to refuse, which
    // Apollo and the WebSocket path run among specifiedRules.
    expect(specifiedRules).toContain(MaxIntrospectionDepthRule);
    expect(
      errorsOf('{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }'),
    ).toEqual(['Maximum introspection depth exceeded']);
  });

  it('still measures the data fields of a document that also introspects', () => {
    const tight = { ...limits, maxDepth: 4 };
    const data = 'analytics { usage { eventsByDay { byType { eventType } } } }';
    for (const query of [
      `{ __schema { queryType { name } } ${data} }`,
      `{ ${data} __type(name: "Query") { name } }`,
      `{ ...F } fragment F on Query { __schema { queryType { name } } ${data} }`,
    ]) {
      const { refusal } = measureDocument(parse(query), schema, tight);
      expect(refusal?.limit).toBe('maxDepth');
      expect(refusal?.message).toMatch(/`analytics\.usage\.eventsByDay\.byType\.eventType` is 5 levels deep/);
    }
    // Within the limit, the introspection beside it adds neither depth nor cost.
    const shallow = '{ __schema { types { fields { type { ofType { name } } } } } analytics { days } }';
    expect(measureDocument(parse(shallow), schema, { ...tight, maxCost: 2 }).refusal).toBe(undefined);
  });
});

interface HttpAnswer {
  status: number;
  data?: { __schema?: unknown };
  errors?: Array<{ message: string; extensions?: { code?: string; limit?: string } }>;
}

describe('introspection over HTTP and WebSocket', () => {
  let app: TestApp;
  let closed: TestApp;
  const live: LiveConnection[] = [];
  beforeAll(async () => {
    app = await startTestApp('embedded');
    closed = await startTestApp('embedded', { env: { GRAPHQL_INTROSPECTION: 'false' } });
  });
  afterAll(async () => {
    for (const connection of live) await connection.dispose();
    await app?.stop();
    await closed?.stop();
  });

  const post = async (to: TestApp, query: string): Promise<HttpAnswer> => {
    const response = await fetch(`${to.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'x-api-key': to.keys.readOnly, 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    });
    return { status: response.status, ...((await response.json()) as Omit<HttpAnswer, 'status'>) };
  };

  it('answers the standard introspection queries over HTTP with the schema', async () => {
    for (const query of STANDARD_QUERIES) {
      const answer = await post(app, query);
      expect(answer.errors).toBeUndefined();
      expect(answer.status).toBe(200);
      const client = buildClientSchema(answer.data as unknown as IntrospectionQuery);
      expect(client.getQueryType()?.getFields()['events']).toBeDefined();
    }
  });

  it('answers them over WebSocket with the schema', async () => {
    const connection = connectLive(app.baseUrl, app.keys.readOnly);
    live.push(connection);
    await connection.connected;
    for (const query of STANDARD_QUERIES) {
      const result = await new Promise<{ data?: unknown; errors?: unknown }>((resolve) => {
        const stop = connection.client.subscribe(
          { query },
          {
            next: (value) => {
              stop();
              resolve(value);
            },
            error: (error) => resolve({ errors: error }),
            complete: () => undefined,
          },
        );
      });
      expect(result.errors).toBeUndefined();
      const client = buildClientSchema(result.data as IntrospectionQuery);
      expect(client.getSubscriptionType()?.getFields()['eventLogged']).toBeDefined();
    }
  });

  it('refuses the query nested 10 levels past the standard one with a validation error', async () => {
    const answer = await post(app, TEN_PAST_STANDARD);
    expect(answer.status).toBe(400);
    expect(answer.data).toBeUndefined();
    expect(answer.errors?.[0]?.extensions).toMatchObject({
      code: 'GRAPHQL_VALIDATION_FAILED',
      limit: 'maxIntrospectionDepth',
    });
    const lists = await post(
      app,
      '{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }',
    );
    expect(lists.status).toBe(400);
    expect(lists.errors?.map((error) => [error.message, error.extensions?.code])).toEqual([
      ['Maximum introspection depth exceeded', 'GRAPHQL_VALIDATION_FAILED'],
    ]);
  });

  it('refuses introspection as before when it is off', async () => {
    const answer = await post(closed, getIntrospectionQuery());
    expect(answer.status).toBe(400);
    expect(answer.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(answer.errors?.[0]?.message).toMatch(/introspection/i);
  });

  it('answers or refuses nested introspection by its bound, never with a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(nestedIntrospection, async (document) => {
        const answer = await post(app, document.query);
        expect(answer.status).toBeLessThan(500);
        if (refusedByBound(document)) {
          expect(answer.status).toBe(400);
          expect(answer.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
          expect(answer.errors?.[0]?.message).toMatch(/[Ii]ntrospection depth/);
        } else {
          expect(answer.errors).toBeUndefined();
          expect(answer.status).toBe(200);
        }
      }),
      { numRuns: 150 },
    );
  });
});
