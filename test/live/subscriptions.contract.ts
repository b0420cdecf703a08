import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeCursor } from '../../src/query/event-queries.js';
import { eventually, startTestApp, type Backend, type TestApp } from '../support/app.js';
import { connectLive, postEvent, type LiveConnection } from '../support/live-client.js';

/** Stored order of a session's events, oldest first, read back through GraphQL. */
async function storedSeqs(app: TestApp, sessionId: string): Promise<string[]> {
  const seqs: string[] = [];
  let after: string | null = null;
  for (;;) {
    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
      body: JSON.stringify({
        query: `query($s: ID, $after: String) { events(filter: { sessionId: $s }, first: 1000, after: $after) {
          nodes { seq } pageInfo { hasNextPage endCursor } } }`,
        variables: { s: sessionId, after },
      }),
    });
    const body = (await response.json()) as {
      data: {
        events: { nodes: Array<{ seq: string }>; pageInfo: { hasNextPage: boolean; endCursor: string } };
      };
    };
    seqs.push(...body.data.events.nodes.map((node) => node.seq));
    if (!body.data.events.pageInfo.hasNextPage) break;
    after = body.data.events.pageInfo.endCursor;
  }
  return seqs.reverse();
}

/** The live feed as a dashboard sees it; run on the embedded backends and on PostgreSQL + Redis. */
export function subscriptionsContract(backend: Backend, options: { skip?: boolean } = {}): void {
  describe.skipIf(options.skip === true)(`eventLogged subscription on ${backend}`, () => {
    let app: TestApp;
    const connections: LiveConnection[] = [];
    const live = (key: string | null = app.keys.readOnly) => {
      const connection = connectLive(app.baseUrl, key);
      connections.push(connection);
      return connection;
    };

    beforeAll(async () => {
      app = await startTestApp(backend, {
        env: { RATE_LIMIT_PER_MINUTE: '100000', LIVE_MAX_SUBSCRIPTIONS_PER_CONNECTION: '3' },
      });
    });
    afterAll(async () => {
      await Promise.all(connections.map((connection) => connection.dispose()));
      await app?.stop();
    });

    it('delivers each stored event matching the filter once, in seq order, and only once it can be queried', async () => {
      const session = `live-${randomUUID()}`;
      const other = `live-${randomUUID()}`;
      const connection = live();
      await connection.connected;
      const bySession = connection.subscribe({ filter: { sessionId: session } });
      const byType = connection.subscribe({
        filter: { sessionId: session, eventTypes: ['review_completed'] },
      });
      const byPayload = connection.subscribe({
        filter: { sessionId: session, payload: [{ path: 'code_language', value: 'rust' }] },
      });
      // Subscribing is asynchronous on the server: a first event shows all three are registered.
      await new Promise((resolve) => setTimeout(resolve, 300));

      const posted = [
        { session_id: session, event_type: 'review_started', payload: { code_language: 'rust' } },
        { session_id: other, event_type: 'review_started', payload: { code_language: 'rust' } },
        { session_id: session, event_type: 'review_completed', payload: { duration_ms: 5 } },
        { session_id: session, event_type: 'review_started', payload: { code_language: 'go' } },
        { session_id: session, event_type: 'review_completed', payload: { duration_ms: 7 } },
      ];
      const ids: string[] = [];
      for (const event of posted) ids.push(await postEvent(app.baseUrl, app.keys.admin, event));

      const all = await bySession.waitFor(4);
      expect(all.map((edge) => edge.node.id)).toEqual([ids[0], ids[2], ids[3], ids[4]]);
      const seqs = all.map((edge) => BigInt(edge.node.seq));
      expect([...seqs].sort((a, b) => (a < b ? -1 : 1))).toEqual(seqs);
      expect((await byType.waitFor(2)).map((edge) => edge.node.id)).toEqual([ids[2], ids[4]]);
      expect((await byPayload.waitFor(1)).map((edge) => edge.node.id)).toEqual([ids[0]]);

      // Published after the commit: what arrived is already readable.
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
        body: JSON.stringify({ query: `{ event(id: "${ids[4]}") { id seq } }` }),
      });
      const body = (await response.json()) as { data: { event: { id: string; seq: string } | null } };
      expect(body.data.event).toEqual({ id: ids[4], seq: all[3]?.node.seq });

      // Nothing else trickles in afterwards (no duplicates, nothing from the other session).
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(bySession.edges).toHaveLength(4);
      expect(byType.edges).toHaveLength(2);
      expect(byPayload.edges).toHaveLength(1);
    });

    it('resumes with after: the received sequence equals the stored one, with no gap or duplicate across the switch', async () => {
      const session = `resume-${randomUUID()}`;
      const total = 240;
      const first = live();
      await first.connected;
      const before = first.subscribe({ filter: { sessionId: session } });
      await new Promise((resolve) => setTimeout(resolve, 200));

      // Events keep arriving the whole time: posted in the background, a few at a time.
      const posting = (async () => {
        for (let i = 0; i < total; i += 4) {
          await Promise.all(
            [0, 1, 2, 3].map((j) =>
              postEvent(app.baseUrl, app.keys.admin, {
                session_id: session,
                event_type: 'review_started',
                payload: { n: i + j },
              }),
            ),
          );
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      })();

      await before.waitFor(40);
      await first.dispose(); // the client goes away mid-stream
      const received = [...before.edges];
      const resumeFrom = received.at(-1)?.cursor;
      expect(resumeFrom).toBeDefined();
      // Offline for a while: events stored meanwhile must come from the database.
      await new Promise((resolve) => setTimeout(resolve, 300));

      const second = live();
      const after = second.subscribe({ filter: { sessionId: session }, after: resumeFrom as string });
      await posting;
      await after.waitFor(total - received.length, 30_000);
      received.push(...after.edges);

      const stored = await storedSeqs(app, session);
      expect(stored).toHaveLength(total);
      expect(received.map((edge) => edge.node.seq)).toEqual(stored);
    });

    it('sends what one turn delivers to a connection in one write: a resumed history of 20 leaves in one system call', async () => {
      const session = `coalesce-${randomUUID()}`;
      const ids: string[] = [];
      for (let n = 0; n < 21; n += 1) {
        ids.push(
          await postEvent(app.baseUrl, app.keys.admin, {
            session_id: session,
            event_type: 'review_started',
            payload: { n },
          }),
        );
      }
      const seqs = await eventually(async () => {
        const stored = await storedSeqs(app, session);
        return stored.length === 21 ? stored : undefined;
      });
      const connection = live();
      await connection.connected;

      // Every write of a server-side socket, with the number of this session's `next` frames it carried.
      const framesPerWrite: number[] = [];
      const countFrames = (data: string) =>
        data.includes(session) ? data.split('"type":"next"').length - 1 : 0;
      const prototype = net.Socket.prototype as unknown as {
        _write(chunk: Buffer, encoding: string, callback: () => void): void;
        _writev(chunks: Array<{ chunk: Buffer }>, callback: () => void): void;
      };
      const { _write: write, _writev: writev } = prototype;
      prototype._write = function (this: net.Socket, chunk, encoding, callback) {
        const frames = countFrames(Buffer.from(chunk).toString('latin1'));
        if (frames > 0) framesPerWrite.push(frames);
        write.call(this, chunk, encoding, callback);
      };
      prototype._writev = function (this: net.Socket, chunks, callback) {
        const frames = countFrames(chunks.map(({ chunk }) => Buffer.from(chunk).toString('latin1')).join(''));
        if (frames > 0) framesPerWrite.push(frames);
        writev.call(this, chunks, callback);
      };
      try {
        const resumed = connection.subscribe({
          filter: { sessionId: session },
          after: encodeCursor(seqs[0]!),
        });
        expect((await resumed.waitFor(20)).map((edge) => edge.node.id)).toEqual(ids.slice(1));
      } finally {
        prototype._write = write;
        prototype._writev = writev;
      }
      // ws alone would make one write per frame: 20 writes of 1.
      expect(framesPerWrite).toEqual([20]);
    });

    it('refuses connection_init without a key or with an unknown key (4401) and a key without the read scope (4403)', async () => {
      expect(await live(null).closed).toMatchObject({ code: 4401 });
      expect(await live('ag_unknownx_000000000000000000000000000000000000000000').closed).toMatchObject({
        code: 4401,
      });
      expect(await live(app.keys.ingestOnly).closed).toMatchObject({ code: 4403 });
    });

    it('answers a bad cursor or filter with an error naming it, and keeps the connection', async () => {
      const connection = live();
      const badCursor = connection.subscribe({ after: 'not-a-cursor' });
      await badCursor.done;
      expect(JSON.stringify(badCursor.errors)).toContain('after: not a cursor');
      const badPath = connection.subscribe({ filter: { payload: [{ path: 'a..b', value: 1 }] } });
      await badPath.done;
      expect(JSON.stringify(badPath.errors)).toContain("payload path 'a..b'");
      // Still usable.
      const session = `after-errors-${randomUUID()}`;
      const ok = connection.subscribe({ filter: { sessionId: session } });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await postEvent(app.baseUrl, app.keys.admin, { session_id: session, event_type: 'review_started' });
      await ok.waitFor(1);
    });

    it('limits subscriptions per connection with a RATE_LIMITED error', async () => {
      const connection = live();
      const open = [1, 2, 3].map(() => connection.subscribe({ filter: { sessionId: randomUUID() } }));
      const fourth = connection.subscribe({ filter: { sessionId: randomUUID() } });
      await fourth.done;
      expect(JSON.stringify(fourth.errors)).toContain('RATE_LIMITED');
      expect(open.every((subscription) => subscription.errors.length === 0)).toBe(true);
    });

    it('refuses eventLogged over HTTP, naming WebSocket', async () => {
      const response = await fetch(`${app.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': app.keys.admin },
        body: JSON.stringify({ query: 'subscription { eventLogged { cursor } }' }),
      });
      const body = (await response.json()) as {
        errors?: Array<{ message: string; extensions: { code: string } }>;
      };
      expect(body.errors?.[0]?.message).toContain('WebSocket');
      expect(body.errors?.[0]?.extensions.code).toBe('BAD_USER_INPUT');
    });

    it('closes a consumer that stops reading with 4008 and a reason, instead of buffering without bound', async () => {
      const slow = await startTestApp(backend, {
        env: { RATE_LIMIT_PER_MINUTE: '100000', LIVE_MAX_BUFFERED_BYTES: '65536' },
      });
      try {
        const socket = new WebSocket(`${slow.baseUrl.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
        const closed = new Promise<{ code: number; reason: string }>((resolve) =>
          socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
        );
        await new Promise((resolve) => socket.once('open', resolve));
        socket.send(
          JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': slow.keys.readOnly } }),
        );
        await new Promise((resolve) => socket.once('message', resolve));
        socket.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: { query: 'subscription { eventLogged { node { payload } } }' },
          }),
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
        socket.pause(); // reads nothing from now on
        const slowDisconnects = async () => {
          const text = await (await fetch(`${slow.baseUrl}/metrics`)).text();
          return Number(
            /auditgraph_live_disconnects_total\{reason="slow_consumer"\} (\d+)/.exec(text)?.[1] ?? 0,
          );
        };
        const blob = 'x'.repeat(32_000);
        // Kernel buffers on loopback absorb several MB before the server's own buffer grows.
        for (let round = 0; round < 100 && (await slowDisconnects()) === 0; round += 1) {
          await Promise.all(
            Array.from({ length: 10 }, (_, j) =>
              postEvent(slow.baseUrl, slow.keys.admin, {
                session_id: 'slow',
                event_type: 'review_started',
                payload: { blob, n: round * 10 + j },
              }),
            ),
          );
        }
        await eventually(
          async () => ((await slowDisconnects()) > 0 ? true : undefined),
          15_000,
          'slow consumer cut',
        );
        socket.resume(); // reads what was queued, then the close frame with its reason
        const ended = await closed;
        expect(ended.code).toBe(4008);
        expect(ended.reason).toContain('Slow consumer');
      } finally {
        await slow.stop();
      }
    });

    it('drops a connection that stops answering pings, and keeps one that answers', async () => {
      const pinging = await startTestApp(backend, { env: { LIVE_KEEPALIVE_MS: '200' } });
      try {
        const open = (autoPong: boolean) => {
          const socket = new WebSocket(
            `${pinging.baseUrl.replace('http', 'ws')}/graphql`,
            'graphql-transport-ws',
            {
              autoPong,
            },
          );
          socket.once('open', () =>
            socket.send(
              JSON.stringify({ type: 'connection_init', payload: { 'x-api-key': pinging.keys.readOnly } }),
            ),
          );
          const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
          return { socket, closed };
        };
        const silent = open(false);
        const answering = open(true);
        expect(await silent.closed).toBe(1006); // cut without a close handshake
        expect(answering.socket.readyState).toBe(WebSocket.OPEN);
        answering.socket.close();
      } finally {
        await pinging.stop();
      }
    });

    it('closes connections with 1001 Going Away when the server stops', async () => {
      const stopping = await startTestApp(backend);
      const connection = connectLive(stopping.baseUrl, stopping.keys.readOnly);
      await connection.connected;
      connection.subscribe();
      await stopping.stop();
      expect(await connection.closed).toMatchObject({ code: 1001 });
    });
  });
}
