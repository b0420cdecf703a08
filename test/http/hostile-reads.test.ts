import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type Backend, type TestApp } from '../support/app.js';

const RUNS = 1_500;

const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/** Values every parser has to survive, picked by hand: the generated ones below vary around them. */
const HAND_PICKED = [
  '\u0000',
  'a\u0000b',
  '\uD800',
  'x\uDC00y',
  '9223372036854775807',
  '9223372036854775808',
  '18446744073709551616',
  '-9223372036854775809',
  '-1',
  '0',
  '1e400',
  'NaN',
  'Infinity',
  '0x10',
  ' ',
  ' 7 ',
  '',
  'é🙂',
  '\u202E',
  '0000-01-01T00:00:00Z',
  '10000-01-01T00:00:00Z',
  '+010000-01-01T00:00:00Z',
  '9999-12-31T23:59:59-23:59',
  '0001-01-01T00:00:00+23:59',
  cursorOf('seq:9223372036854775808'),
  cursorOf('seq:9999999999999999999'),
  cursorOf('seq:-1'),
  cursorOf('seq:0'),
  '!!!',
  '====',
];

const pad = (value: number, width: number) => String(value).padStart(width, '0');

/** ISO 8601 date-times around the edges of years 1..9999, with offsets that carry them over. */
const hostileInstant = fc
  .tuple(
    fc.oneof(
      fc.integer({ min: 0, max: 2 }),
      fc.integer({ min: 9998, max: 10_001 }),
      fc.integer({ min: 0, max: 10_001 }),
    ),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 0, max: 32 }),
    fc.integer({ min: 0, max: 24 }),
    fc.constantFrom('Z', '+23:59', '-23:59', '+00:00', '-00:00', '+24:00', ''),
  )
  .map(([year, month, day, hour, offset]) => {
    const yearText = year > 9999 ? `+${pad(year, 6)}` : pad(year, 4);
    return `${yearText}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:00:00${offset}`;
  });

/** Hostile strings: NUL, lone surrogates, numbers past 64 bits, edge dates, forged and garbage cursors. */
const hostileText: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...HAND_PICKED),
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc
    .tuple(
      fc.string({ maxLength: 6 }),
      fc.constantFrom('\u0000', '\uD800', '\uDFFF', '\uFFFE', '\u0085'),
      fc.string({ maxLength: 6 }),
    )
    .map(([before, hostile, after]) => before + hostile + after),
  fc.bigInt({ min: -(2n ** 66n), max: 2n ** 66n }).map(String),
  fc.constantFrom(2n ** 63n - 1n, 2n ** 63n, 2n ** 64n, -(2n ** 63n), -(2n ** 63n) - 1n).map(String),
  hostileInstant,
  fc.uint8Array({ maxLength: 24 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
  fc.bigInt({ min: 0n, max: 10n ** 19n - 1n }).map((seq) => cursorOf(`seq:${seq}`)),
  fc.string({ maxLength: 12 }).map((text) => cursorOf(`seq:${text}`)),
);

/** Every UTF-8 byte percent-encoded (a lone surrogate goes out as U+FFFD, as any client sends it). */
const percentEncode = (text: string) =>
  [...Buffer.from(text, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');

/** A query-string value as sent: text percent-encoded, or raw escapes a client may send (`%ED%A0%80`, `%`). */
const hostileQueryValue = fc.oneof(
  { weight: 5, arbitrary: hostileText.map(percentEncode) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('%ED%A0%80', '%FF', '%', '%0', '%zz', '%00%00', '%C0%80', '+', '%2B'),
  },
);

interface ErrorBody {
  error?: { code?: string; message?: string; fields?: Array<{ field: string }> };
}

/** A 400 names its parameter in its message or in `fields`. */
function namesParameter(body: ErrorBody, name: string): boolean {
  return (
    (body.error?.message ?? '').includes(name) ||
    (body.error?.fields ?? []).some((problem) => problem.field.includes(name))
  );
}

interface GraphQLAnswer {
  data?: unknown;
  errors?: Array<{ message: string; extensions?: { code?: string; fields?: Array<{ field: string }> } }>;
}

/** The GraphQL operations reading (or, for keys, writing) by an argument, each with the one variable `$v`. */
const GRAPHQL_ARGUMENTS: Array<{ argument: string; type: string; query: string; mutation?: boolean }> = [
  { argument: 'sessionId', type: 'ID', query: 'events(filter: { sessionId: $v }) { nodes { id } }' },
  { argument: 'after', type: 'String', query: 'events(after: $v) { pageInfo { endCursor } }' },
  { argument: 'first', type: 'Int!', query: 'events(first: $v) { nodes { id } }' },
  { argument: 'from', type: 'DateTime', query: 'events(filter: { from: $v }) { nodes { id } }' },
  { argument: 'to', type: 'DateTime', query: 'events(filter: { to: $v }) { nodes { id } }' },
  {
    argument: 'eventTypes',
    type: '[EventType!]',
    query: 'events(filter: { eventTypes: $v }) { nodes { id } }',
  },
  {
    argument: 'path',
    type: 'String!',
    query: 'events(filter: { payload: [{ path: $v, value: 1 }] }) { nodes { id } }',
  },
  {
    argument: 'value',
    type: 'JSON!',
    query: 'events(filter: { payload: [{ path: "a", value: $v }] }) { nodes { id } }',
  },
  { argument: 'id', type: 'ID!', query: 'event(id: $v) { id }' },
  { argument: 'id', type: 'ID!', query: 'eventProof(id: $v) { seq }' },
  { argument: 'from', type: 'String', query: 'verifyIntegrity(from: $v) { ok }' },
  { argument: 'to', type: 'String', query: 'verifyIntegrity(to: $v) { ok }' },
  { argument: 'limit', type: 'Int', query: 'deadLetters(limit: $v) { total }' },
  { argument: 'days', type: 'Int!', query: 'analytics(days: $v) { usage { totalEvents } }' },
  {
    argument: 'name',
    type: 'String!',
    query: 'createApiKey(input: { name: $v, scopes: [read] }) { key { id } }',
    mutation: true,
  },
  { argument: 'id', type: 'ID!', query: 'revokeApiKey(id: $v) { id }', mutation: true },
];

/** Variables of any JSON shape, most of them hostile strings (or lists and objects holding them). */
const hostileVariable: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileText },
  { weight: 1, arbitrary: fc.array(hostileText, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.dictionary(hostileText, hostileText, { maxKeys: 3 }) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.integer(),
      fc.double(),
      fc.constantFrom(2 ** 31, 2 ** 53 + 1, -(2 ** 31) - 1, 1e308),
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** The codes a hostile argument may meet besides success; the first three must name the argument. */
const NAMING_CODES = new Set(['BAD_USER_INPUT', 'BAD_REQUEST', 'GRAPHQL_VALIDATION_FAILED']);
const OTHER_ALLOWED_CODES = new Set(['NOT_FOUND', 'RATE_LIMITED']);

function checkGraphQLAnswer(status: number, text: string, argument: string, what: string): void {
  expect(status, `${what} answered ${status}: ${text.slice(0, 300)}`).toBeLessThan(500);
  const body = JSON.parse(text) as GraphQLAnswer;
  for (const error of body.errors ?? []) {
    const code = error.extensions?.code ?? '';
    expect(
      NAMING_CODES.has(code) || OTHER_ALLOWED_CODES.has(code),
      `${what}: unexpected error ${text.slice(0, 300)}`,
    ).toBe(true);
    if (NAMING_CODES.has(code)) {
      const named =
        error.message.includes(argument) ||
        error.message.includes('$v') ||
        (error.extensions?.fields ?? []).some((problem) => problem.field.includes(argument));
      expect(named, `${what}: the error does not name ${argument}: ${text.slice(0, 300)}`).toBe(true);
    }
  }
}

for (const backend of ['embedded', 'postgres+redis'] as const satisfies readonly Backend[]) {
  describe(`hostile read parameters (${backend})`, () => {
    let app: TestApp;
    let operations: Array<{ path: string; parameters: Array<{ name: string; in: string }> }>;
    beforeAll(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_PER_MINUTE: '10000000' } });
      const document = (await (await fetch(`${app.baseUrl}/openapi.json`)).json()) as {
        paths: Record<string, { get?: { parameters?: Array<{ name: string; in: string }> } }>;
      };
      operations = Object.entries(document.paths).flatMap(([path, item]) =>
        item.get ? [{ path, parameters: item.get.parameters ?? [] }] : [],
      );
    });
    afterAll(async () => {
      await app?.stop();
    });

    const get = async (target: string) => {
      const response = await fetch(`${app.baseUrl}${target}`, { headers: { 'x-api-key': app.keys.admin } });
      return { status: response.status, text: await response.text() };
    };

    it('answers every GET parameter of every documented route with 2xx or a 4xx naming it, never 5xx', async () => {
      const withParameters = operations.filter((operation) => operation.parameters.length > 0);
      expect(withParameters.map((operation) => operation.path)).toEqual(
        expect.arrayContaining([
          '/events',
          '/analytics/usage',
          '/integrity/verify',
          '/events/{id}/proof',
          '/dead-letters',
        ]),
      );
      const target = fc.constantFrom(
        ...operations.flatMap((operation) => [
          ...operation.parameters.map((parameter) => ({ path: operation.path, parameter })),
          // A parameter the route does not take: refused by name, or ignored by an open route.
          { path: operation.path, parameter: { name: 'unknown_param', in: 'query' } },
        ]),
      );
      await fc.assert(
        fc.asyncProperty(target, hostileQueryValue, async ({ path, parameter }, value) => {
          const url =
            parameter.in === 'path'
              ? path.replace(`{${parameter.name}}`, value || '%20')
              : `${path.replace(/\{\w+\}/g, '00000000-0000-7000-8000-000000000000')}?${parameter.name}=${value}`;
          const { status, text } = await get(url);
          expect(status, `GET ${url} answered ${status}: ${text.slice(0, 300)}`).toBeLessThan(500);
          if (status === 400) {
            expect(namesParameter(JSON.parse(text) as ErrorBody, parameter.name), `GET ${url}: ${text}`).toBe(
              true,
            );
          }
        }),
        { numRuns: RUNS },
      );
    }, 300_000);

    it('answers hostile GraphQL arguments over POST and GET with data or an error naming the argument, never 5xx', async () => {
      const operation = fc.constantFrom(...GRAPHQL_ARGUMENTS);
      await fc.assert(
        fc.asyncProperty(operation, hostileVariable, fc.boolean(), async (op, v, overGet) => {
          const keyword = op.mutation ? 'mutation' : 'query';
          const query = `${keyword}($v: ${op.type}) { ${op.query} }`;
          const useGet = overGet && !op.mutation;
          const response = useGet
            ? await fetch(
                `${app.baseUrl}/graphql?${new URLSearchParams({ query, variables: JSON.stringify({ v }) })}`,
                { headers: { 'x-api-key': app.keys.admin, 'apollo-require-preflight': 'true' } },
              )
            : await fetch(`${app.baseUrl}/graphql`, {
                method: 'POST',
                headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
                body: JSON.stringify({ query, variables: { v } }),
              });
          checkGraphQLAnswer(
            response.status,
            await response.text(),
            op.argument,
            `${useGet ? 'GET' : 'POST'} ${query} with ${JSON.stringify(v)?.slice(0, 120)}`,
          );
        }),
        { numRuns: RUNS },
      );
    }, 300_000);

    it('answers malformed persisted-query extensions over POST and GET with a 4xx, never 5xx or an internal error', async () => {
      const extensions = fc.oneof(
        fc.jsonValue({ maxDepth: 2 }),
        fc.record({
          persistedQuery: fc.oneof(
            fc.jsonValue({ maxDepth: 2 }),
            fc.record(
              {
                version: fc.oneof(fc.constant(1), fc.jsonValue({ maxDepth: 1 })),
                sha256Hash: fc.oneof(
                  hostileText,
                  fc.jsonValue({ maxDepth: 1 }),
                  fc.stringMatching(/^[0-9a-f]{64}$/),
                ),
              },
              { requiredKeys: [] },
            ),
          ),
        }),
      );
      await fc.assert(
        fc.asyncProperty(extensions, fc.boolean(), fc.boolean(), async (ext, withQuery, overGet) => {
          const query = withQuery ? '{ eventTypes { count } }' : undefined;
          const search = new URLSearchParams({ extensions: JSON.stringify(ext) });
          if (query) search.set('query', query);
          const response = overGet
            ? await fetch(`${app.baseUrl}/graphql?${search}`, {
                headers: { 'x-api-key': app.keys.admin, 'apollo-require-preflight': 'true' },
              })
            : await fetch(`${app.baseUrl}/graphql`, {
                method: 'POST',
                headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
                body: JSON.stringify({ query, extensions: ext }),
              });
          const text = await response.text();
          const what = `${overGet ? 'GET' : 'POST'} extensions ${JSON.stringify(ext)} (query: ${withQuery})`;
          expect(response.status, `${what}: ${text.slice(0, 300)}`).toBeLessThan(500);
          expect(text, what).not.toContain('INTERNAL_SERVER_ERROR');
        }),
        { numRuns: 300 },
      );
    }, 300_000);

    it('answers hostile dead-letter ids to replay over REST and GraphQL with 2xx or a 4xx naming ids, never 5xx', async () => {
      const ids = fc.array(
        fc.oneof(
          hostileText,
          fc
            .tuple(fc.bigInt({ min: 0n, max: 2n ** 70n }), fc.bigInt({ min: 0n, max: 2n ** 70n }))
            .map(([ms, n]) => `${ms}-${n}`),
        ),
        { maxLength: 4 },
      );
      await fc.assert(
        fc.asyncProperty(ids, async (list) => {
          const rest = await fetch(`${app.baseUrl}/dead-letters/replay`, {
            method: 'POST',
            headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
            body: JSON.stringify({ ids: list }),
          });
          const text = await rest.text();
          expect(rest.status, `replay ${JSON.stringify(list)}: ${text}`).toBeLessThan(500);
          if (rest.status === 400)
            expect(namesParameter(JSON.parse(text) as ErrorBody, 'ids'), text).toBe(true);
          const graphql = await fetch(`${app.baseUrl}/graphql`, {
            method: 'POST',
            headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
            body: JSON.stringify({
              query: 'mutation($v: [ID!]!) { replayDeadLetters(ids: $v) { replayed missing } }',
              variables: { v: list },
            }),
          });
          checkGraphQLAnswer(
            graphql.status,
            await graphql.text(),
            'ids',
            `replayDeadLetters ${JSON.stringify(list)}`,
          );
        }),
        { numRuns: 300 },
      );
    }, 300_000);

    it.each([
      ['/events?session_id=%00', 'session_id'],
      ['/events?session_id=a%00b', 'session_id'],
      [`/events?cursor=${cursorOf('seq:9223372036854775808')}`, 'cursor'],
      [`/events?cursor=${cursorOf('seq:9999999999999999999')}`, 'cursor'],
      ['/events?cursor=%00', 'cursor'],
      ['/events?page=1e400', 'page'],
      ['/integrity/verify?from=9223372036854775808', 'from'],
      ['/integrity/verify?to=-9223372036854775809', 'to'],
      ['/integrity/proof?id=%00', 'id'],
      ['/events/%00/proof', 'id'],
      ['/dead-letters?limit=18446744073709551616', 'limit'],
      ['/analytics/usage?days=%00', 'days'],
    ])('GET %s is a 400 naming %s', async (target, name) => {
      const { status, text } = await get(target);
      expect(status, text).toBe(400);
      expect(namesParameter(JSON.parse(text) as ErrorBody, name), text).toBe(true);
    });

    it.each([
      ['sessionId', 'ID', 'events(filter: { sessionId: $v }) { nodes { id } }', 'a\u0000b'],
      ['after', 'String', 'events(after: $v) { nodes { id } }', cursorOf('seq:9223372036854775808')],
      ['from', 'DateTime', 'events(filter: { from: $v }) { nodes { id } }', '0000-01-01T00:00:00Z'],
      ['from', 'DateTime', 'events(filter: { from: $v }) { nodes { id } }', '0001-01-01T00:00:00+23:59'],
      ['to', 'DateTime', 'events(filter: { to: $v }) { nodes { id } }', '9999-12-31T23:59:59-23:59'],
      [
        'path',
        'String!',
        'events(filter: { payload: [{ path: $v, value: 1 }] }) { nodes { id } }',
        'a\u0000',
      ],
      ['path', 'String!', 'events(filter: { payload: [{ path: $v, value: 1 }] }) { nodes { id } }', '\uD800'],
      [
        'value',
        'JSON!',
        'events(filter: { payload: [{ path: "a", value: $v }] }) { nodes { id } }',
        { k: 'a\u0000' },
      ],
      [
        'value',
        'JSON!',
        'events(filter: { payload: [{ path: "a", value: $v }] }) { nodes { id } }',
        'x\uDC00',
      ],
      ['from', 'String', 'verifyIntegrity(from: $v) { ok }', '9223372036854775808'],
    ])(
      'GraphQL %s (%s) refuses a hostile value with BAD_USER_INPUT naming it',
      async (argument, type, field, v) => {
        const response = await fetch(`${app.baseUrl}/graphql`, {
          method: 'POST',
          headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
          body: JSON.stringify({ query: `query($v: ${type}) { ${field} }`, variables: { v } }),
        });
        const text = await response.text();
        expect(response.status).toBeLessThan(500);
        const body = JSON.parse(text) as GraphQLAnswer;
        expect(body.errors?.[0]?.extensions?.code, text).toBe('BAD_USER_INPUT');
        checkGraphQLAnswer(response.status, text, argument, field);
      },
    );

    it('refuses an API key name with a NUL character naming the field, and creates no key', async () => {
      const before = await app.running.backends.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM api_keys',
      );
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
        body: JSON.stringify({
          query:
            'mutation($name: String!) { createApiKey(input: { name: $name, scopes: [read] }) { secret } }',
          variables: { name: 'ops\u0000bot' },
        }),
      });
      const body = (await response.json()) as GraphQLAnswer;
      expect(body.errors?.[0]?.extensions).toMatchObject({
        code: 'BAD_USER_INPUT',
        fields: [{ field: 'name' }],
      });
      const after = await app.running.backends.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM api_keys',
      );
      expect(after[0]!.n).toBe(before[0]!.n);
    });

    it.each([
      [{ persistedQuery: 'x' }, true],
      [{ persistedQuery: { version: '1', sha256Hash: 1 } }, false],
      [{ persistedQuery: { version: 1, sha256Hash: 'abc' } }, true],
    ])(
      'a malformed persisted query %j (query sent: %s) is a 400 BAD_REQUEST over POST and GET',
      async (ext, withQuery) => {
        const query = withQuery ? '{ eventTypes { count } }' : undefined;
        const search = new URLSearchParams({ extensions: JSON.stringify(ext) });
        if (query) search.set('query', query);
        for (const response of [
          await fetch(`${app.baseUrl}/graphql`, {
            method: 'POST',
            headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
            body: JSON.stringify({ query, extensions: ext }),
          }),
          await fetch(`${app.baseUrl}/graphql?${search}`, {
            headers: { 'x-api-key': app.keys.admin, 'apollo-require-preflight': 'true' },
          }),
        ]) {
          expect(response.status).toBe(400);
          const body = (await response.json()) as GraphQLAnswer;
          expect(body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
          expect(body.errors?.[0]?.message).toMatch(/persisted query|sha/);
        }
      },
    );
  });
}
