/** The event-listing cases: newest pages by type and session, deep pages by offset, cursor and GraphQL. */
import type { createEventQueries } from '../../src/query/event-queries.js';
import {
  DEEP_OFFSET,
  DEEP_PAGE,
  DEEPEST_PAGE,
  EVENT_COLUMNS,
  expect,
  oneStatement,
  PAGE,
  type Case,
  type GraphQLPage,
  type RestPage,
} from './case.js';

export interface EventCaseContext {
  sessionsApi: string[];
  sessionsSql: string[];
  deepCursor: string;
  deepSeq: string;
  deepFirstSeq: string;
  deepTypeFirstSeq: string;
  queries: ReturnType<typeof createEventQueries>;
}

const GRAPHQL_EVENTS = `query Page($first: Int!, $after: String) {
  events(first: $first, after: $after) {
    edges { cursor node { id seq eventType sessionId payload clientTime receivedAt persistedAt apiKeyId } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const select = (rest: string) => `SELECT ${EVENT_COLUMNS} FROM audit_events ${rest}`;

const restPage = (check: (page: RestPage) => void) => (body: unknown) => {
  const page = body as RestPage;
  expect(Array.isArray(page.events), 'events array');
  check(page);
};
const fullPage = (page: RestPage) => expect(page.count === PAGE, `50 events, got ${page.count}`);

/** The newest 50 of one type: an index range read. */
function byTypeCase(id: string, label: string, type: string, context: EventCaseContext): Case {
  return {
    id,
    label,
    targetMs: 10,
    api: () => ({ method: 'GET', path: `/events?event_type=${type}&limit=50` }),
    check: restPage((page) => {
      fullPage(page);
      expect(
        page.events.every((event) => event.event_type === type),
        `only ${type}`,
      );
    }),
    inProcess: () => context.queries.listPage({ eventTypes: [type] }, PAGE, 1),
    sql: oneStatement(
      'WHERE event_type=$1 ORDER BY seq DESC LIMIT 50',
      select('WHERE event_type = $1 ORDER BY seq DESC LIMIT 50'),
      () => [type],
    ),
  };
}

/** A page deep by offset: REST `page=`; the bare SQL's offset is a parameter, shown inline. */
function offsetSql(offset: number, filter = '', params: unknown[] = []): Case['sql'] {
  const where = filter ? `WHERE ${filter} ` : '';
  const at = `$${params.length + 1}`;
  return oneStatement(
    `${filter ? `WHERE ${filter.replace(' = ', '=')} ` : ''}ORDER BY seq DESC OFFSET ${offset} LIMIT 50`,
    select(`${where}ORDER BY seq DESC OFFSET ${at} LIMIT 50`),
    () => [...params, offset],
    select(`${where}ORDER BY seq DESC OFFSET ${offset} LIMIT 50`),
  );
}

export function eventCases(context: EventCaseContext): Case[] {
  const { queries } = context;
  const sessionAt = (list: string[], sample: number) => list[sample % list.length]!;
  const deepPage = restPage((page) => {
    fullPage(page);
    expect(
      page.events[0]!.seq === context.deepFirstSeq,
      `first seq ${context.deepFirstSeq}, got ${page.events[0]!.seq}`,
    );
  });
  const keyset = oneStatement(
    'WHERE seq < $1 ORDER BY seq DESC LIMIT 50 (keyset)',
    select('WHERE seq < $1 ORDER BY seq DESC LIMIT 50'),
    () => [context.deepSeq],
  );
  return [
    {
      id: 'health',
      label: 'GET /health (HTTP floor, no DB)',
      api: () => ({ method: 'GET', path: '/health' }),
      check: (body) => expect((body as { status?: string }).status === 'healthy', 'healthy'),
      sql: oneStatement('SELECT 1', 'SELECT 1'),
    },
    byTypeCase('by-type', 'newest 50 by type (llm_query_sent)', 'llm_query_sent', context),
    byTypeCase('by-type-rare', 'newest 50 by type (error_occurred, 5 %)', 'error_occurred', context),
    {
      id: 'by-session',
      label: 'newest 50 by session (random sessions)',
      targetMs: 10,
      api: (sample) => ({
        method: 'GET',
        path: `/events?session_id=${encodeURIComponent(sessionAt(context.sessionsApi, sample))}&limit=50`,
      }),
      check: restPage((page) => {
        expect(page.count > 0, 'the session has events');
        expect(new Set(page.events.map((event) => event.session_id)).size === 1, 'one session');
      }),
      inProcess: (sample) =>
        queries.listPage({ sessionId: sessionAt(context.sessionsApi, sample + 7) }, PAGE, 1),
      sql: oneStatement(
        'WHERE session_id=$1 ORDER BY seq DESC LIMIT 50',
        select('WHERE session_id = $1 ORDER BY seq DESC LIMIT 50'),
        (sample) => [sessionAt(context.sessionsSql, sample)],
      ),
    },
    {
      id: 'page-1000-offset',
      label: `page ${DEEP_PAGE} of 50, REST page=${DEEP_PAGE} (offset ${DEEP_OFFSET})`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?page=${DEEP_PAGE}&limit=50` }),
      check: deepPage,
      inProcess: () => queries.listPage({}, PAGE, DEEP_PAGE),
      sql: offsetSql(DEEP_OFFSET),
    },
    {
      id: 'page-1000-cursor',
      label: `page ${DEEP_PAGE} of 50, REST cursor`,
      targetMs: 10,
      api: () => ({
        method: 'GET',
        path: `/events?limit=50&cursor=${encodeURIComponent(context.deepCursor)}`,
      }),
      check: deepPage,
      inProcess: () => queries.list({}, PAGE, context.deepCursor),
      sql: keyset,
    },
    {
      id: 'page-1000-graphql',
      label: `page ${DEEP_PAGE} of 50, GraphQL events(first:50, after)`,
      targetMs: 10,
      api: () => ({
        method: 'POST',
        path: '/graphql',
        body: { query: GRAPHQL_EVENTS, variables: { first: PAGE, after: context.deepCursor } },
      }),
      check: (body) => {
        const answer = body as GraphQLPage;
        expect(!answer.errors, `no errors: ${JSON.stringify(answer.errors)}`);
        const edges = answer.data?.events.edges ?? [];
        expect(edges.length === PAGE, `50 edges, got ${edges.length}`);
        expect(edges[0]!.node.seq === context.deepFirstSeq, 'same page as REST');
      },
      inProcess: () => queries.list({}, PAGE, context.deepCursor),
      sql: keyset,
    },
    {
      id: 'page-deepest-offset',
      label: `deepest REST page: page=${DEEPEST_PAGE} (offset ${(DEEPEST_PAGE - 1) * PAGE}, MAX_OFFSET)`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?page=${DEEPEST_PAGE}&limit=50` }),
      check: restPage(fullPage),
      inProcess: () => queries.listPage({}, PAGE, DEEPEST_PAGE),
      sql: offsetSql((DEEPEST_PAGE - 1) * PAGE),
    },
    {
      id: 'page-1000-offset-by-type',
      label: `page ${DEEP_PAGE} of 50 by type (llm_query_sent), REST page`,
      targetMs: 10,
      api: () => ({ method: 'GET', path: `/events?event_type=llm_query_sent&page=${DEEP_PAGE}&limit=50` }),
      check: restPage((page) => {
        fullPage(page);
        expect(page.events[0]!.seq === context.deepTypeFirstSeq, 'expected first seq');
      }),
      inProcess: () => queries.listPage({ eventTypes: ['llm_query_sent'] }, PAGE, DEEP_PAGE),
      sql: offsetSql(DEEP_OFFSET, 'event_type = $1', ['llm_query_sent']),
    },
  ];
}
