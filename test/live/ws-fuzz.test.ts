import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../src/query/event-queries.js';
import { startTestApp, type Backend, type TestApp } from '../support/app.js';
import { connectLive, postEvent } from '../support/live-client.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';
import { openRawSocket, type RawConnection, type RawMessage } from './raw-socket.js';

/** One generated frame: its text, and the id of the operation it starts when it is a well-formed subscribe. */
interface HostileFrame {
  text: string;
  operationId?: string;
  /** A live subscription that may be valid: it runs until completed, so no end is awaited. */
  mayRun?: boolean;
}

// Pieces of GraphQL and of our schema. No field that completes a selection (`__typename`, `cursor`,
// `id`…) is among them, so no soup of them is a valid subscription left running forever.
const TOKENS = [
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ':',
  '!',
  '=',
  '$f',
  '$after',
  '...',
  '@include',
  '@skip(if: true)',
  'query',
  'mutation',
  'subscription',
  'fragment',
  'on',
  'eventLogged',
  'events',
  'event',
  'analytics',
  'logEvent',
  '__schema',
  '__type',
  'filter:',
  'first: 1000000000000',
  'after: "x"',
  '"\\u0000"',
  '#',
  '\n',
  'EventFilter',
  'Query',
  'null',
  'true',
  '1e309',
  '"""',
  '"',
];
// Valid documents, so hostile variables meet coercion and resolvers, not only the parser.
const DOCUMENTS = [
  'query($f: EventFilter) { events(filter: $f, first: 2) { nodes { id } } }',
  'query($id: ID!) { event(id: $id) { id } }',
  'subscription($f: EventFilter, $after: String) { eventLogged(filter: $f, after: $after) { cursor } }',
  '{ __typename }',
];

const query = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 200 }),
  fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((tokens) => tokens.join(' ')),
  fc.constantFrom(...DOCUMENTS),
);
const variables = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.record(
    {
      f: fc.oneof(
        fc.jsonValue(),
        fc.record(
          { sessionId: fc.jsonValue(), eventTypes: fc.jsonValue(), payload: fc.jsonValue() },
          { requiredKeys: [] },
        ),
      ),
      after: fc.oneof(fc.string(), fc.jsonValue(), fc.constant(encodeCursor('99999999999999999999'))),
      id: fc.jsonValue(),
    },
    { requiredKeys: [] },
  ),
  fc.dictionary(fc.string(), fc.jsonValue()),
  fc.jsonValue(), // not an object: a malformed message
);
const anything = fc.oneof(fc.jsonValue(), fc.constant(undefined));

let frames = 0;
const hostileFrame: fc.Arbitrary<HostileFrame> = fc.oneof(
  // A subscribe message of the right shape, with a hostile document, variables or operation name.
  fc
    .record({ query, variables, operationName: fc.option(fc.string(), { nil: undefined }) })
    .map(({ query: text, variables: values, operationName }) => {
      const operationId = `op-${(frames += 1)}`;
      const payload = { query: text, variables: values, operationName };
      const mayRun = text === DOCUMENTS[2];
      return { text: JSON.stringify({ id: operationId, type: 'subscribe', payload }), operationId, mayRun };
    }),
  // Subscribe messages of the wrong shape: the protocol's 4400.
  fc
    .record({
      id: anything,
      payload: anything,
      query: anything,
      operationName: anything,
      extensions: anything,
    })
    .map(({ id, payload, query: text, operationName, extensions }) => ({
      text: JSON.stringify({
        id,
        type: 'subscribe',
        payload: payload ?? { query: text, operationName, extensions },
      }),
    })),
  // Anything at all, any message type (the server's own types among them), or not JSON.
  fc
    .record({
      type: fc.oneof(fc.string(), fc.constantFrom('next', 'error', 'connection_ack', 'complete', 'pong')),
      id: anything,
      payload: anything,
    })
    .map((message) => ({ text: JSON.stringify(message) })),
  fc.string({ unit: 'binary', maxLength: 300 }).map((text) => ({ text })),
  fc.jsonValue().map((value) => ({ text: JSON.stringify(value) ?? 'undefined' })),
);

const EXAMPLES: HostileFrame[] = [
  { text: '{"type":"next","id":"1","payload":{"data":{}}}' },
  { text: '{"type":"connection_ack"}' },
  { text: '{"type":"error","id":"1","payload":[]}' },
  { text: '{"type":"connection_init"}' },
  { text: 'not json' },
  { text: '{"id":"","type":"subscribe","payload":{"query":"{ __typename }"}}' },
  {
    text: '{"id":"__proto__","type":"subscribe","payload":{"query":"subscription {"}}',
    operationId: '__proto__',
  },
  { text: '{"id":"x1","type":"subscribe","payload":{"query":"{ nope }"}}', operationId: 'x1' },
  {
    text: JSON.stringify({
      id: 'x2',
      type: 'subscribe',
      payload: { query: DOCUMENTS[2], variables: { f: { payload: [{ path: 'a..b', value: 1 }] } } },
    }),
    operationId: 'x2',
  },
];

/** graphql-ws closes for a protocol error with these: bad request, duplicate id, second connection_init. */
const PROTOCOL_CLOSES = [4400, 4409, 4429];

function expectNoInternalError(messages: readonly RawMessage[]): void {
  const text = JSON.stringify(messages);
  expect(text).not.toContain('INTERNAL_SERVER_ERROR');
  expect(text).not.toContain('Internal server error');
}

function fuzzSuite(backend: Backend, skip: boolean): void {
  describe.skipIf(skip)(`hostile graphql-ws messages on ${backend}`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(backend, { env: { RATE_LIMIT_PER_MINUTE: '1000000' } });
    });
    afterAll(async () => {
      await app?.stop();
    });

    it('answers each hostile message with an error of its operation or a protocol close, never a 4500 or an internal error, and a subscription on another socket keeps receiving', async () => {
      const watcher = connectLive(app.baseUrl, app.keys.readOnly);
      const session = `fuzz-${randomUUID()}`;
      const watched = watcher.subscribe({ filter: { sessionId: session }, after: encodeCursor('0') });
      await postEvent(app.baseUrl, app.keys.admin, { session_id: session, event_type: 'review_started' });
      await watched.waitFor(1);

      let socket: RawConnection | undefined;
      let probes = 0;
      try {
        await fc.assert(
          fc.asyncProperty(hostileFrame, async (frame) => {
            if (!socket || socket.socket.readyState !== socket.socket.OPEN) {
              socket?.dispose();
              socket = await openRawSocket(app.baseUrl, app.keys.admin);
            }
            const current = socket;
            current.send(frame.text);
            // Answered in turn: a `{ __typename }` after it completes, or the socket was closed for it.
            const probe = `probe-${(probes += 1)}`;
            current.send({ id: probe, type: 'subscribe', payload: { query: '{ __typename }' } });
            const probed = await current.outcome(probe);
            if (probed.close) expect(PROTOCOL_CLOSES).toContain(probed.close.code);
            else expect(probed.messages.at(-1)?.type).toBe('complete');

            if (frame.operationId !== undefined && frame.mayRun === true) {
              current.send({ id: frame.operationId, type: 'complete' });
            } else if (frame.operationId !== undefined) {
              const answered = await current.outcome(frame.operationId);
              if (answered.close) expect(PROTOCOL_CLOSES).toContain(answered.close.code);
              else expect(['error', 'complete']).toContain(answered.messages.at(-1)?.type);
            }
            expectNoInternalError(current.messages);
            if (current.socket.readyState !== current.socket.OPEN) {
              expect(PROTOCOL_CLOSES).toContain((await current.closed).code);
            }
          }),
          { numRuns: 150, examples: EXAMPLES.map((frame) => [frame]) },
        );
      } finally {
        socket?.dispose();
      }

      await postEvent(app.baseUrl, app.keys.admin, { session_id: session, event_type: 'review_completed' });
      expect(await watched.waitFor(2)).toHaveLength(2);
      expect(watched.errors).toEqual([]);
      await watcher.dispose();
    });
  });
}

fuzzSuite('embedded', false);
fuzzSuite('postgres+redis', !(postgresAvailable && redisAvailable));
