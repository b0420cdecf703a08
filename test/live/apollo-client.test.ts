import { randomUUID } from 'node:crypto';
import { ApolloClient, gql, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestApp, type TestApp } from '../support/app.js';
import { postEvent } from '../support/live-client.js';

const EVENT_LOGGED = gql`
  subscription Feed($filter: EventFilter) {
    eventLogged(filter: $filter) {
      cursor
      node {
        id
        eventType
        sessionId
        payload
      }
    }
  }
`;

interface FeedData {
  eventLogged: { cursor: string; node: { id: string; eventType: string; sessionId: string } };
}

describe('Apollo Client', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded');
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('receives eventLogged through its graphql-ws link, as a frontend would', async () => {
    const wsClient = createClient({
      url: `${app.baseUrl.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { 'x-api-key': app.keys.readOnly },
    });
    const client = new ApolloClient({ link: new GraphQLWsLink(wsClient), cache: new InMemoryCache() });
    const session = `apollo-${randomUUID()}`;
    const received: FeedData['eventLogged'][] = [];
    let resolveAll!: () => void;
    const all = new Promise<void>((resolve) => (resolveAll = resolve));
    const subscription = client
      .subscribe<FeedData>({ query: EVENT_LOGGED, variables: { filter: { sessionId: session } } })
      .subscribe({
        next: (result) => {
          if (result.data) received.push(result.data.eventLogged);
          if (received.length === 3) resolveAll();
        },
      });
    try {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const ids: string[] = [];
      for (const eventType of ['review_started', 'llm_query_sent', 'review_completed']) {
        ids.push(
          await postEvent(app.baseUrl, app.keys.admin, { session_id: session, event_type: eventType }),
        );
      }
      await all;
      expect(received.map((edge) => edge.node.id)).toEqual(ids);
      expect(received.map((edge) => edge.node.eventType)).toEqual([
        'review_started',
        'llm_query_sent',
        'review_completed',
      ]);
      expect(received.every((edge) => edge.node.sessionId === session)).toBe(true);
    } finally {
      subscription.unsubscribe();
      await wsClient.dispose();
      client.stop();
    }
  });
});
