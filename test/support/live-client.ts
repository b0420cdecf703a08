import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface LiveEdge {
  cursor: string;
  node: { id: string; seq: string; eventType: string; sessionId: string; payload: Record<string, unknown> };
}

export const EVENT_LOGGED = `subscription($filter: EventFilter, $after: String) {
  eventLogged(filter: $filter, after: $after) {
    cursor
    node { id seq eventType sessionId payload }
  }
}`;

export interface LiveSubscriptionHandle {
  /** Every edge received so far, in arrival order. */
  edges: LiveEdge[];
  /** GraphQL errors delivered to the subscription. */
  errors: unknown[];
  /** Resolves once at least `count` edges arrived; rejects after `timeoutMs` with what did. */
  waitFor(count: number, timeoutMs?: number): Promise<LiveEdge[]>;
  /** Settles when the server completes the subscription or it errors. */
  done: Promise<void>;
  unsubscribe(): void;
}

export interface LiveConnection {
  client: Client;
  /** The close event that ended the connection, once it ended. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves when the server acknowledged connection_init. */
  connected: Promise<void>;
  subscribe(variables?: { filter?: Record<string, unknown>; after?: string }): LiveSubscriptionHandle;
  dispose(): Promise<void>;
}

/** A real graphql-ws client on `ws`, as a dashboard's backend would use it; no retries, so closes are seen. */
export function connectLive(baseUrl: string, apiKey: string | null): LiveConnection {
  let resolveClosed!: (event: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (resolveClosed = resolve));
  let resolveConnected!: () => void;
  const connected = new Promise<void>((resolve) => (resolveConnected = resolve));
  const client = createClient({
    url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: apiKey === null ? {} : { 'x-api-key': apiKey },
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => undefined,
    on: {
      connected: () => resolveConnected(),
      closed: (event) => {
        const { code, reason } = event as { code: number; reason: string };
        resolveClosed({ code, reason: String(reason) });
      },
    },
  });
  return {
    client,
    closed,
    connected,
    subscribe(variables = {}) {
      const edges: LiveEdge[] = [];
      const errors: unknown[] = [];
      const waiters: Array<{ count: number; resolve: (edges: LiveEdge[]) => void }> = [];
      let resolveDone!: () => void;
      const done = new Promise<void>((resolve) => (resolveDone = resolve));
      const unsubscribe = client.subscribe<{ eventLogged: LiveEdge }>(
        { query: EVENT_LOGGED, variables },
        {
          next: (result) => {
            if (result.errors) errors.push(...result.errors);
            if (result.data) edges.push(result.data.eventLogged);
            for (const waiter of waiters.filter((candidate) => edges.length >= candidate.count)) {
              waiters.splice(waiters.indexOf(waiter), 1);
              waiter.resolve(edges);
            }
          },
          error: (error) => {
            errors.push(error);
            resolveDone();
          },
          complete: () => resolveDone(),
        },
      );
      return {
        edges,
        errors,
        done,
        unsubscribe,
        waitFor(count, timeoutMs = 15_000) {
          if (edges.length >= count) return Promise.resolve(edges);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(
              () =>
                reject(
                  new Error(
                    `received ${edges.length} of ${count} events in ${timeoutMs} ms; errors: ${JSON.stringify(errors)}`,
                  ),
                ),
              timeoutMs,
            );
            waiters.push({
              count,
              resolve: (value) => {
                clearTimeout(timer);
                resolve(value);
              },
            });
          });
        },
      };
    },
    async dispose() {
      await client.dispose();
    },
  };
}

/** Posts one event through the REST shim and returns its id; fails the test on anything but 202. */
export async function postEvent(
  baseUrl: string,
  apiKey: string,
  event: { session_id: string; event_type: string; payload?: Record<string, unknown>; event_id?: string },
): Promise<string> {
  const response = await fetch(`${baseUrl}/log`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': apiKey },
    body: JSON.stringify(event),
  });
  const body = (await response.json()) as { event_id?: string };
  if (response.status !== 202 || !body.event_id) {
    throw new Error(`POST /log answered ${response.status}: ${JSON.stringify(body)}`);
  }
  return body.event_id;
}

/** Live-feed limits for a graphql-ws adapter built directly in a test (generous: they are not under test). */
export const TEST_LIVE_LIMITS = {
  maxSubscriptionsPerConnection: 10,
  maxSubscriptionsPerKey: 10,
  maxBufferedBytes: 1 << 20,
  keepAliveMs: 60_000,
};
