import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { postgresAvailable, redisAvailable } from '../support/services.js';

interface PageInfo {
  hasNextPage: boolean;
  hasPreviousPage: boolean;
  startCursor: string | null;
  endCursor: string | null;
}

interface Page {
  edges: Array<{ cursor: string; node: { id: string; seq: string } }>;
  pageInfo: PageInfo;
}

interface Answer {
  status: number;
  data?: { events: Page } | null;
  errors?: Array<{ message: string; extensions?: { code?: string; fields?: Array<{ field: string }> } }>;
}

const EVENTS = `query($filter: EventFilter, $first: Int, $after: String, $last: Int, $before: String) {
  events(filter: $filter, first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id seq } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

const LOG_MANY = 'mutation($inputs: [LogEventInput!]!) { logEvents(inputs: $inputs) { accepted } }';

/** Relay paging of `events`, forward and backward, on one backend. */
function pagingContract(backend: Backend, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`events paging on ${backend}`, () => {
    let app: TestApp;
    beforeAll(async () => {
      app = await startTestApp(backend);
    });
    afterAll(async () => {
      await app?.stop();
    });

    const request = async (query: string, variables: Record<string, unknown>) => {
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, ...((await response.json()) as object) };
    };
    const events = (variables: Record<string, unknown>) => request(EVENTS, variables) as Promise<Answer>;
    const page = async (variables: Record<string, unknown>): Promise<Page> => {
      const answer = await events(variables);
      expect(answer.errors).toBeUndefined();
      return answer.data!.events;
    };

    /** Logs `count` events in a fresh session and waits until all are stored; returns the session's filter. */
    async function seed(count: number): Promise<{ filter: { sessionId: string }; all: string[] }> {
      const sessionId = `paging-${randomUUID()}`;
      const inputs = Array.from({ length: count }, (_, n) => ({
        sessionId,
        eventType: 'review_started',
        payload: { n },
      }));
      if (count > 0) await request(LOG_MANY, { inputs });
      const filter = { sessionId };
      const all = await eventually(async () => {
        const whole = await page({ filter, first: 1000 });
        return whole.edges.length >= count ? whole.edges.map((edge) => edge.node.id) : undefined;
      }, 15_000);
      return { filter, all };
    }

    /** Pages with `size` from the newest (forward) or the oldest (backward) until no page is left. */
    async function walk(filter: object, size: number, direction: 'forward' | 'backward') {
      const pages: Page[] = [];
      let cursor: string | null = null;
      for (;;) {
        const current: Page =
          direction === 'forward'
            ? await page({ filter, first: size, after: cursor })
            : await page({ filter, last: size, before: cursor });
        pages.push(current);
        const more =
          direction === 'forward' ? current.pageInfo.hasNextPage : current.pageInfo.hasPreviousPage;
        if (!more) return pages;
        cursor = direction === 'forward' ? current.pageInfo.endCursor : current.pageInfo.startCursor;
        if (pages.length > 1000) throw new Error('paging did not end');
      }
    }

    it('pages backward with last/before to the newest event, matching forward pages in position', async () => {
      const { filter, all } = await seed(7);
      const forward = await walk(filter, 3, 'forward');
      expect(forward.map((p) => p.edges.map((edge) => edge.node.id))).toEqual([
        all.slice(0, 3),
        all.slice(3, 6),
        all.slice(6),
      ]);
      const backward = await walk(filter, 3, 'backward');
      // Backward pages are cut from the oldest end, each still newest first.
      expect(backward.map((p) => p.edges.map((edge) => edge.node.id))).toEqual([
        all.slice(4),
        all.slice(1, 4),
        all.slice(0, 1),
      ]);
      const newest = backward.at(-1)!;
      expect(newest.edges[0]!.node.id).toBe(all[0]);
      expect(newest.pageInfo).toEqual({
        hasPreviousPage: false,
        hasNextPage: true,
        startCursor: newest.edges[0]!.cursor,
        endCursor: newest.edges[0]!.cursor,
      });
      expect(backward[0]!.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      expect(forward[0]!.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
      expect(forward[1]!.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
    });

    it('takes cursors from either direction and both cursors together', async () => {
      const { filter, all } = await seed(6);
      const forward = await page({ filter, first: 2 });
      // A forward page's endCursor read backward: the events just newer than it.
      const back = await page({ filter, last: 5, before: forward.pageInfo.endCursor });
      expect(back.edges.map((edge) => edge.node.id)).toEqual(all.slice(0, 1));
      expect(back.pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
      // A backward page's startCursor read forward: the events just older than it.
      const oldest = await page({ filter, last: 2 });
      const next = await page({ filter, first: 10, after: oldest.pageInfo.startCursor });
      expect(next.edges.map((edge) => edge.node.id)).toEqual(all.slice(5));
      expect(next.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
      const between = await page({
        filter,
        first: 10,
        after: forward.edges[0]!.cursor,
        before: oldest.edges[1]!.cursor,
      });
      expect(between.edges.map((edge) => edge.node.id)).toEqual(all.slice(1, 5));
      const betweenBackward = await page({
        filter,
        last: 2,
        after: forward.edges[0]!.cursor,
        before: oldest.edges[1]!.cursor,
      });
      expect(betweenBackward.edges.map((edge) => edge.node.id)).toEqual(all.slice(3, 5));
      expect(betweenBackward.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
    });

    it('answers an empty result with null cursors and both flags false', async () => {
      const { filter } = await seed(0);
      for (const variables of [{ first: 5 }, { last: 5 }]) {
        expect((await page({ filter, ...variables })).pageInfo).toEqual({
          hasNextPage: false,
          hasPreviousPage: false,
          startCursor: null,
          endCursor: null,
        });
      }
    });

    // A resolver's refusal is a GraphQL error in a 200 answer (GraphQL over HTTP); never a 5xx.
    it('refuses bad combinations, sizes and cursors with BAD_USER_INPUT naming the argument', async () => {
      const cases: Array<[Record<string, unknown>, string[]]> = [
        [{ first: 2, last: 2 }, ['first', 'last']],
        [{ first: 0 }, ['first']],
        [{ first: 1001 }, ['first']],
        [{ last: 0 }, ['last']],
        [{ last: -1 }, ['last']],
        [{ last: 1001 }, ['last']],
        [{ first: null }, ['first']],
        [{ last: 1, before: 'garbage' }, ['before']],
        [{ first: 1, before: 'garbage' }, ['before']],
        [{ last: 1, after: 'garbage' }, ['after']],
        [{ first: 1, after: Buffer.from('seq:99999999999999999999').toString('base64url') }, ['after']],
      ];
      for (const [variables, fields] of cases) {
        const answer = await events(variables);
        expect(answer.status, JSON.stringify(variables)).toBe(200);
        expect(answer.data).toBeNull();
        expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
        expect(answer.errors?.[0]?.extensions?.fields?.map((problem) => problem.field)).toEqual(fields);
      }
      // Cursors at the ends of int8's range are valid cursors: an answer, not a database error.
      for (const seq of ['0', '9223372036854775807']) {
        const cursor = Buffer.from(`seq:${seq}`).toString('base64url');
        for (const variables of [
          { first: 2, after: cursor },
          { last: 2, before: cursor },
          { first: 2, before: cursor },
          { last: 2, after: cursor },
        ]) {
          expect((await events(variables)).errors, JSON.stringify(variables)).toBeUndefined();
        }
      }
      const literal = (await request('{ events(first: 1, last: 1) { nodes { id } } }', {})) as Answer;
      expect(literal.status).toBe(200);
      expect(literal.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(literal.errors?.[0]?.message).toMatch(/first.*last/);
    });

    it('visits every event once, in order, paging forward from the start and backward from the end', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 0, max: 12 }),
          fc.integer({ min: 1, max: 5 }),
          fc.integer({ min: 1, max: 5 }),
          async (count, forwardSize, backwardSize) => {
            const { filter, all } = await seed(count);
            const forward = await walk(filter, forwardSize, 'forward');
            const backward = await walk(filter, backwardSize, 'backward');
            expect(forward.flatMap((p) => p.edges.map((edge) => edge.node.id))).toEqual(all);
            expect(backward.reverse().flatMap((p) => p.edges.map((edge) => edge.node.id))).toEqual(all);
            for (const [index, p] of forward.entries()) {
              expect(p.edges.length).toBe(
                count === 0 ? 0 : Math.min(forwardSize, count - index * forwardSize),
              );
              expect(p.pageInfo.hasPreviousPage).toBe(index > 0);
              expect(p.pageInfo.hasNextPage).toBe(index < forward.length - 1);
              expectCursorsMatch(p);
            }
            // `backward` is now newest page first.
            for (const [index, p] of backward.entries()) {
              expect(p.pageInfo.hasPreviousPage).toBe(index > 0);
              expect(p.pageInfo.hasNextPage).toBe(index < backward.length - 1);
              expectCursorsMatch(p);
            }
            for (const p of [...forward, ...backward]) {
              const seqs = p.edges.map((edge) => BigInt(edge.node.seq));
              expect(seqs.every((seq, i) => i === 0 || seq < seqs[i - 1]!)).toBe(true);
            }
          },
        ),
        { numRuns: 12 },
      );
    }, 120_000);
  });
}

function expectCursorsMatch(page: Page): void {
  expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
  expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
}

pagingContract('embedded');
pagingContract('postgres+redis', { skip: !(postgresAvailable && redisAvailable) });
