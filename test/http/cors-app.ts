import WebSocket from 'ws';
import type { CorsOrigins } from '../../src/config/cors-origins.js';
import type { GraphQLServices } from '../../src/graphql/context.js';
import { DEFAULT_QUERY_LIMITS } from '../../src/graphql/limits.js';
import { createFormatError, createGraphQLRoutes, createSchema } from '../../src/graphql/server.js';
import { createGraphQLWebSocket } from '../../src/graphql/websocket.js';
import { createHttpApp } from '../../src/http/server.js';
import type { Fanout } from '../../src/live/fanout.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { createAuthThrottle } from '../../src/security/auth-throttle.js';
import { createAuthenticator, digestSecret } from '../../src/security/authenticate.js';
import { TEST_LIVE_LIMITS } from '../support/live-client.js';

export const SECRET = 'cors_test_secret_1234567';

export interface CorsApp {
  baseUrl: string;
  metrics: ReturnType<typeof createMetrics>;
  close(): Promise<void>;
}

/**
 * The HTTP front door with a REST route, `/graphql` (Apollo, only `{ __typename }` runs) and its
 * WebSocket, as the API role wires them, with `cors` as CORS_ORIGINS gave it. Port 0.
 */
export async function startCorsApp(
  cors: CorsOrigins | undefined,
  failuresPerMinute = 1000,
): Promise<CorsApp> {
  const logger = createLogger({ level: 'silent' });
  const metrics = createMetrics();
  const authenticator = createAuthenticator({
    staticKeys: [{ id: 'k', scopes: ['read', 'ingest'], sha256: digestSecret(SECRET) }],
  });
  const services = { authenticator } as unknown as GraphQLServices;
  const schema = createSchema();
  const graphql = await createGraphQLRoutes(services, {
    schema,
    logger,
    introspection: true,
    landingPage: false,
  });
  const websocket = createGraphQLWebSocket({
    schema,
    services,
    fanout: {} as Fanout,
    logger,
    metrics,
    queryLimits: DEFAULT_QUERY_LIMITS,
    live: TEST_LIVE_LIMITS,
    introspection: true,
    formatError: createFormatError(logger),
    cors,
  });
  const app = createHttpApp({
    routes: [
      ...graphql.routes,
      { method: 'GET', path: '/things', scope: 'read', handle: () => ({ status: 200, body: { ok: true } }) },
      {
        method: 'POST',
        path: '/things',
        scope: 'ingest',
        handle: () => ({ status: 201, body: { ok: true } }),
      },
      { method: 'GET', path: '/open', scope: null, handle: () => ({ status: 200, body: { ok: true } }) },
    ],
    authenticator,
    logger,
    maxBodyBytes: 64 * 1024,
    metrics,
    authThrottle: createAuthThrottle({ failuresPerMinute }),
    onUpgrade: websocket.handleUpgrade,
    cors,
  });
  const [port] = await app.listen([0], '127.0.0.1');
  return {
    baseUrl: `http://127.0.0.1:${port as number}`,
    metrics,
    async close() {
      await websocket.close(100);
      await app.close(1000);
      await graphql.stop();
    },
  };
}

export const preflight = (url: string, origin: string, method = 'POST') =>
  fetch(url, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': method,
      'access-control-request-headers': 'content-type, x-api-key',
    },
  });

/** Opens a WebSocket to /graphql with `origin` (none when undefined): the upgrade's status, 101 when it opened. */
export function upgradeStatus(baseUrl: string, origin: string | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
      ...(origin === undefined ? {} : { origin }),
    });
    socket.once('open', () => {
      socket.close();
      resolve(101);
    });
    socket.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.once('error', (error) => reject(error));
  });
}
