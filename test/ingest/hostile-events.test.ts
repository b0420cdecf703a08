import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_TYPES } from '../../src/events/event-types.js';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

/**
 * Generated hostile events, sent as raw JSON text (so numbers JavaScript cannot
 * write, repeated keys and broken UTF-8 reach the server as a caller would send
 * them): each is refused with a 4xx, or stored exactly as sent and read back
 * identically; every 202 is stored exactly once, and nothing stalls behind them.
 */

const RUNS = 400;

/** A JSON value as the test builds it, with numbers kept as their literal text. */
type Node =
  | { kind: 'number'; literal: string }
  | { kind: 'string'; value: string }
  | { kind: 'literal'; value: boolean | null }
  | { kind: 'array'; items: Node[] }
  | { kind: 'object'; members: Array<[string, Node]> };

const render = (node: Node): string => {
  switch (node.kind) {
    case 'number':
      return node.literal;
    case 'string':
      return JSON.stringify(node.value);
    case 'literal':
      return JSON.stringify(node.value);
    case 'array':
      return `[${node.items.map(render).join(',')}]`;
    case 'object':
      return `{${node.members.map(([key, value]) => `${JSON.stringify(key)}:${render(value)}`).join(',')}}`;
  }
};

/** Valid most of the time, so whole events often are, and both answers are drawn. */
const mostly = <T>(valid: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: hostile, weight: 1 });

const hostileNumberLiteral = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  fc
    .tuple(fc.bigInt({ min: 0n, max: 10n ** 25n }), fc.integer({ min: -420, max: 420 }))
    .map(([digits, exponent]) => `${digits}e${exponent}`),
  fc.constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '12345678901234567890',
    '9007199254740993',
    '0.1',
    '1E2',
    '-0',
    '0.30000000000000000001',
    '5e-324',
    '1.7976931348623157e308',
    '2e308',
  ),
);
const numberLiteral = mostly(
  fc.oneof(fc.integer().map(String), fc.double({ noNaN: true, noDefaultInfinity: true }).map(String)),
  hostileNumberLiteral,
);

const hostileString = mostly(
  fc.string({ maxLength: 24 }),
  fc.oneof(
    fc.string({ unit: 'binary', maxLength: 24 }),
    fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udfff', '\ufeff', ' padded ', '', '💥'.repeat(3)),
  ),
);

const key = fc.oneof(
  { arbitrary: fc.string({ maxLength: 6 }), weight: 4 },
  {
    arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', 'a', '', 'a\u0000', '\ud800'),
    weight: 1,
  },
);

const { node } = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    numberLiteral.map((literal): Node => ({ kind: 'number', literal })),
    hostileString.map((value): Node => ({ kind: 'string', value })),
    fc.constantFrom(true, false, null).map((value): Node => ({ kind: 'literal', value })),
    fc.array(tie('node'), { maxLength: 3 }).map((items): Node => ({ kind: 'array', items })),
    fc
      .array(fc.tuple(key, tie('node')), { maxLength: 4 })
      .map((members): Node => ({ kind: 'object', members })),
  ),
}));

const payload = fc
  .array(fc.tuple(key, node), { maxLength: 5 })
  .map((members): Node => ({ kind: 'object', members }));

const pad = (value: number, width: number) => String(value).padStart(width, '0');
const timestamp = fc
  .record({
    year: mostly(
      fc.integer({ min: 1970, max: 2100 }),
      fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 9998, max: 10000 })),
    ),
    month: fc.integer({ min: 1, max: 12 }),
    day: mostly(fc.integer({ min: 1, max: 28 }), fc.integer({ min: 29, max: 31 })),
    hour: mostly(fc.integer({ min: 0, max: 23 }), fc.constant(24)),
    minute: fc.integer({ min: 0, max: 59 }),
    fraction: fc.option(mostly(fc.stringMatching(/^\d{1,3}$/), fc.stringMatching(/^\d{4,9}$/)), {
      nil: undefined,
    }),
    offset: fc.oneof(
      fc.constant('Z'),
      fc
        .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
        .map(([sign, hours, minutes]) => `${sign}${pad(hours, 2)}:${pad(minutes, 2)}`),
    ),
  })
  .map(
    ({ year, month, day, hour, minute, fraction, offset }) =>
      `${pad(year, 4)}-${pad(month, 2)}-${pad(day, 2)}T${pad(hour, 2)}:${pad(minute, 2)}:00${fraction === undefined ? '' : `.${fraction}`}${offset}`,
  );

/** A few ids shared by many events, so reuse (identical and different) is drawn often. */
const ID_POOL = Array.from({ length: 6 }, (_, n) => `019ac0de-0000-7000-8000-${String(n).padStart(12, '0')}`);

interface Sent {
  sessionId: Node;
  eventType: string;
  payload?: Node;
  eventId?: string;
  timestamp?: string;
}

const sentEvent = fc.record(
  {
    sessionId: mostly(
      fc.oneof(
        fc.nat().map((value): Node => ({ kind: 'number', literal: String(value) })),
        fc
          .string({ minLength: 1, maxLength: 20 })
          .map((value): Node => ({ kind: 'string', value: `s${value}` })),
      ),
      fc.oneof(
        hostileNumberLiteral.map((literal): Node => ({ kind: 'number', literal })),
        hostileString.map((value): Node => ({ kind: 'string', value })),
      ),
    ),
    eventType: mostly(fc.constantFrom(...EVENT_TYPES), fc.string()),
    payload,
    eventId: fc.oneof(
      { arbitrary: fc.constantFrom(...ID_POOL), weight: 1 },
      { arbitrary: fc.uuid({ version: [4, 7] }), weight: 4 },
      { arbitrary: fc.constant('not-a-uuid'), weight: 1 },
    ),
    timestamp,
  },
  { requiredKeys: ['sessionId', 'eventType'] },
);

const renderEvent = (event: Sent) => {
  const members: Array<[string, string]> = [
    ['session_id', render(event.sessionId)],
    ['event_type', JSON.stringify(event.eventType)],
  ];
  if (event.payload) members.push(['payload', render(event.payload)]);
  if (event.eventId !== undefined) members.push(['event_id', JSON.stringify(event.eventId)]);
  if (event.timestamp !== undefined) members.push(['timestamp', JSON.stringify(event.timestamp)]);
  return `{${members.map(([name, value]) => `"${name}":${value}`).join(',')}}`;
};

const request = fc.oneof(
  {
    arbitrary: sentEvent.map((event) => ({ events: [event], batch: false, brokenUtf8: undefined })),
    weight: 6,
  },
  {
    arbitrary: fc
      .array(sentEvent, { minLength: 1, maxLength: 3 })
      .map((events) => ({ events, batch: true, brokenUtf8: undefined })),
    weight: 2,
  },
  {
    arbitrary: fc
      .tuple(sentEvent, fc.nat())
      .map(([event, at]) => ({ events: [event], batch: false, brokenUtf8: at })),
    weight: 1,
  },
);

/** A decimal number's value as digits and exponent, independent of the code under test. */
function decimal(literal: string): string {
  const match = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(literal);
  if (!match) throw new Error(`not a number literal: ${literal}`);
  const [, sign, whole, fraction = '', exponent = '0'] = match;
  let digits = `${whole}${fraction}`.replace(/^0+/, '');
  let power = BigInt(exponent) - BigInt(fraction.length);
  if (digits === '') return '0';
  while (digits.endsWith('0')) {
    digits = digits.slice(0, -1);
    power += 1n;
  }
  return `${sign}${digits}e${power}`;
}

/** Why `value` (as read back) is not the node as sent, or undefined when it is. */
function differs(node: Node, value: unknown, path: string): string | undefined {
  switch (node.kind) {
    case 'number':
      return typeof value === 'number' && decimal(String(value)) === decimal(node.literal)
        ? undefined
        : `${path}: sent ${node.literal}, read ${JSON.stringify(value)}`;
    case 'string':
    case 'literal':
      return value === node.value
        ? undefined
        : `${path}: sent ${JSON.stringify(node.value)}, read ${JSON.stringify(value)}`;
    case 'array':
      if (!Array.isArray(value) || value.length !== node.items.length) return `${path}: array changed`;
      for (const [index, item] of node.items.entries()) {
        const problem = differs(item, value[index], `${path}.${index}`);
        if (problem) return problem;
      }
      return undefined;
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return `${path}: not an object`;
      const keys = node.members.map(([name]) => name);
      if (new Set(keys).size !== keys.length) return `${path}: accepted an object with a repeated key`;
      if (Object.keys(value).length !== keys.length) return `${path}: keys changed`;
      for (const [name, member] of node.members) {
        if (!Object.hasOwn(value, name)) return `${path}.${name}: missing`;
        const problem = differs(member, (value as Record<string, unknown>)[name], `${path}.${name}`);
        if (problem) return problem;
      }
      return undefined;
    }
  }
}

interface Expected {
  sent: Sent;
  text: string;
}

const backends: Backend[] = ['embedded', 'postgres+redis'];

for (const backend of backends) {
  describe.skipIf(backend !== 'embedded' && !(postgresAvailable && redisAvailable))(
    `property: hostile events on ${backend}`,
    () => {
      let app: TestApp;
      beforeAll(async () => {
        app = await startTestApp(backend, { env: { RATE_LIMIT_PER_MINUTE: '10000000' } });
      });
      afterAll(async () => {
        await app?.stop();
      });

      it(`refuses each of ${RUNS} generated hostile requests with a 4xx or stores it exactly as sent, once, with nothing stalled behind`, async () => {
        /** What each accepted id was accepted with: every 202 for an id must carry the same event. */
        const accepted = new Map<string, Expected>();
        const statuses = new Map<number, number>();
        await fc.assert(
          fc.asyncProperty(request, async ({ events, batch, brokenUtf8 }) => {
            const texts = events.map(renderEvent);
            const text = batch ? `[${texts.join(',')}]` : texts[0]!;
            let body: Buffer = Buffer.from(text, 'utf8');
            if (brokenUtf8 !== undefined) {
              const at = brokenUtf8 % (body.length + 1);
              body = Buffer.concat([body.subarray(0, at), Buffer.from([0xff]), body.subarray(at)]);
            }
            const response = await fetch(`${app.baseUrl}/log`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
              body,
            });
            const answer = (await response.json()) as {
              event_id?: string;
              event_ids?: string[];
              error?: { code: string; message: string; fields?: unknown[] };
            };
            statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
            expect(
              response.status,
              `${text.slice(0, 300)} → ${JSON.stringify(answer).slice(0, 300)}`,
            ).toBeLessThan(500);
            if (brokenUtf8 !== undefined) expect(response.status).toBe(400);
            if (response.status !== 202) {
              expect([400, 409]).toContain(response.status);
              expect(answer.error?.message.length).toBeGreaterThan(0);
              return;
            }
            const ids = answer.event_ids ?? [answer.event_id!];
            expect(ids).toHaveLength(events.length);
            ids.forEach((id, index) => {
              const sent = events[index]!;
              if (sent.eventId !== undefined) expect(id).toBe(sent.eventId.toLowerCase());
              const earlier = accepted.get(id);
              // Accepted twice only as the same event: a retry.
              if (earlier) expect(renderEvent(earlier.sent)).toBe(renderEvent(sent));
              else accepted.set(id, { sent, text: texts[index]! });
            });
          }),
          { numRuns: RUNS },
        );

        // Sent after all of them: stored too, so nothing waits behind a poison event.
        const last = await fetch(`${app.baseUrl}/log`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
          body: JSON.stringify({ session_id: 'after-the-storm', event_type: 'review_started' }),
        });
        expect(last.status).toBe(202);
        const { event_id: lastId } = (await last.json()) as { event_id: string };
        const { store, queue } = app.running.backends;
        await eventually(
          async () => ((await store.countByIds([lastId])) === 1 ? true : undefined),
          60_000,
          'the last event stored',
        );
        await eventually(
          async () => ((await queue.stats()).depth === 0 ? true : undefined),
          60_000,
          'the queue drained',
        );
        expect((await queue.stats()).deadLetters).toBe(0);
        expect(await store.countByIds([...accepted.keys()])).toBe(accepted.size);

        // Read back through the REST API, every accepted event exactly as sent.
        const readBack = new Map<string, Record<string, unknown>>();
        for (let cursor: string | null = null; ;) {
          const page = (await (
            await fetch(`${app.baseUrl}/events?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, {
              headers: { 'x-api-key': app.keys.admin },
            })
          ).json()) as { events: Array<Record<string, unknown>>; next_cursor: string | null };
          for (const event of page.events) readBack.set(event['id'] as string, event);
          if (!page.next_cursor) break;
          cursor = page.next_cursor;
        }
        for (const [id, { sent, text }] of accepted) {
          const event = readBack.get(id);
          expect(event, `accepted ${id} is listed`).toBeDefined();
          const sessionId =
            sent.sessionId.kind === 'number'
              ? String(Number(sent.sessionId.literal))
              : (sent.sessionId as { value: string }).value;
          expect(event!['session_id'], text).toBe(sessionId);
          if (sent.sessionId.kind === 'number')
            expect(decimal(String(Number(sent.sessionId.literal))), text).toBe(
              decimal(sent.sessionId.literal),
            );
          expect(event!['event_type']).toBe(sent.eventType);
          expect(
            differs(sent.payload ?? { kind: 'object', members: [] }, event!['payload'], 'payload'),
            text,
          ).toBeUndefined();
          expect(event!['client_time'], text).toBe(
            sent.timestamp === undefined ? null : new Date(Date.parse(sent.timestamp)).toISOString(),
          );
          if (sent.timestamp !== undefined) {
            const fraction = /\.(\d+)/.exec(sent.timestamp)?.[1] ?? '';
            expect(fraction.slice(3), `${sent.timestamp} kept to the millisecond`).toMatch(/^0*$/);
          }
        }
        // The run drew both sides: a suite that accepted nothing, or refused nothing, proves little.
        expect(accepted.size, JSON.stringify([...statuses])).toBeGreaterThan(RUNS / 20);
        expect(statuses.get(400) ?? 0).toBeGreaterThan(RUNS / 10);
      }, 600_000);
    },
  );
}
