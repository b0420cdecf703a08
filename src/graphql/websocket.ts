import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  execute,
  GraphQLError,
  type ExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
} from 'graphql';
import { CloseCode, handleProtocols, makeServer, type ConnectionInitMessage } from 'graphql-ws';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { AppError, badRequest, websocketCloseCodeOf } from '../errors.js';
import { createCorsPolicy, type CorsOrigins } from '../http/cors.js';
import { toAppError } from '../to-app-error.js';
import type { Fanout } from '../live/fanout.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { compileFilter, decodeCursor, encodeCursor, type EventFilter } from '../query/event-queries.js';
import { presentedKey, type Principal } from '../security/authenticate.js';
import type { StoredEvent } from '../events/stored-event.js';
import { contextOf, type GraphQLServices, type LiveOperation } from './context.js';
import type { QueryLimits } from './limits.js';
import { authorizeLive, createLiveKeyWatch } from './live-keys.js';
import { liveIterator } from './live-iterator.js';
import { createOperationPreparer, isClientMessage, refusalOfChangedText } from './ws-operation.js';
import { createWriteCoalescer } from './write-coalescer.js';

export interface LiveLimits {
  maxSubscriptionsPerConnection: number;
  maxSubscriptionsPerKey: number;
  /** Unsent bytes a connection may hold before it is closed as a slow consumer. */
  maxBufferedBytes: number;
  keepAliveMs: number;
}

export interface GraphQLWebSocketOptions {
  schema: GraphQLSchema;
  services: GraphQLServices;
  fanout: Fanout;
  logger: Logger;
  metrics?: Metrics;
  queryLimits: QueryLimits;
  live: LiveLimits;
  /** As over HTTP (GRAPHQL_INTROSPECTION): off also hides "Did you mean …?" hints. */
  introspection: boolean;
  /** How often the keys of open connections are asked about again; defaults to half the key cache TTL. */
  keyRecheckMs?: number;
  formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError;
  /**
   * CORS_ORIGINS, as over HTTP: an upgrade whose Origin is neither listed nor this host's is
   * refused with 403. Without an Origin (not a browser) it passes. Unset: same origin only.
   */
  cors?: CorsOrigins;
}

/** What graphql-ws keeps per connection, beside its own state. */
interface Connection {
  socket: WebSocket;
  request: IncomingMessage;
  /** The secret it authenticated with, re-checked on every operation and by the key watch. */
  presented?: string;
  principal?: Principal;
  openSubscriptions: number;
  /** Stops the key watch for this connection. */
  unwatch?: () => void;
}

/** Close codes of our own, beside graphql-ws's (CloseCode) and the error family's (websocketCloseCodeOf). */
const LiveCloseCode = {
  GoingAway: 1001,
  /** The client read too slowly: its unsent messages passed the limit. */
  SlowConsumer: 4008,
} as const;

/**
 * How long a closed slow consumer gets to read what was already queued and the
 * close frame behind it (nothing more is queued once it is closing), before its
 * socket is cut.
 */
const SLOW_CONSUMER_GRACE_MS = 10_000;
/** Frames of the graphql-ws protocol are text, also when handed to ws as bytes. */
const TEXT_FRAME = { binary: false } as const;
/**
 * GraphQL over WebSocket (the graphql-ws protocol) at /graphql, on the same
 * ports as HTTP. graphql-ws's protocol core does the handshake, operations and
 * errors; this is its adapter to `ws`, after graphql-ws's own `use/ws`, plus
 * what an audit feed needs: authentication in `connection_init` with the same
 * `authenticate()` as HTTP, subscription limits, keep-alive, a bound on unsent
 * bytes per connection, and a draining close.
 *
 * `eventLogged` events are not executed per subscriber by graphql-ws: the
 * fanout renders each event once per group of identical subscriptions and
 * sends the finished `next` frame to every member's socket.
 */
export function createGraphQLWebSocket(options: GraphQLWebSocketOptions) {
  const { schema, services, fanout, logger, metrics, live } = options;
  const cors = createCorsPolicy(options.cors ?? []);
  const subscriptionsPerKey = new Map<string, number>();
  const prepare = createOperationPreparer({
    schema,
    limits: options.queryLimits,
    introspection: options.introspection,
  });
  const keyWatch = createLiveKeyWatch({
    authenticator: services.authenticator,
    logger,
    onForbidden: services.onForbidden,
    intervalMs: options.keyRecheckMs,
  });
  const authorize = (presented: string | undefined) =>
    authorizeLive(services.authenticator, presented, { onForbidden: services.onForbidden });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols,
    // A subscribe message carries a query, bounded before parsing like HTTP's, and its variables.
    maxPayload: options.queryLimits.maxQueryLength * 4 + 64 * 1024,
  });

  function formatErrors(errors: readonly GraphQLError[]): GraphQLFormattedError[] {
    return errors.map((error) => options.formatError(error.toJSON(), error));
  }

  function formatResult(result: ExecutionResult): ExecutionResult | { data?: unknown; errors: unknown } {
    if (!result.errors) return result;
    return { ...result, errors: formatErrors(result.errors) };
  }

  function closeFor(socket: WebSocket, error: unknown): void {
    if (error instanceof AppError) return socket.close(websocketCloseCodeOf(error.code), error.message);
    logger.error({ err: error }, 'WebSocket message handling failed');
    socket.close(CloseCode.InternalServerError, 'Internal server error');
  }

  function closeSlowConsumer(socket: WebSocket): void {
    if (socket.readyState !== socket.OPEN) return;
    metrics?.liveDisconnects.inc({ reason: 'slow_consumer' });
    logger.warn({ bufferedBytes: socket.bufferedAmount }, 'closing a slow live-feed consumer');
    socket.close(
      LiveCloseCode.SlowConsumer,
      `Slow consumer: over ${live.maxBufferedBytes} bytes unsent; resubscribe with your last cursor as after`,
    );
    // The close frame waits behind the unsent data; a client that reads nothing must not hold it long.
    setTimeout(() => socket.terminate(), SLOW_CONSUMER_GRACE_MS).unref();
  }

  function countSubscription(connection: Connection, principal: Principal): () => void {
    if (connection.openSubscriptions >= live.maxSubscriptionsPerConnection) {
      throw new AppError(
        'RATE_LIMITED',
        `Too many subscriptions on this connection (at most ${live.maxSubscriptionsPerConnection}).`,
      );
    }
    const forKey = subscriptionsPerKey.get(principal.keyId) ?? 0;
    if (forKey >= live.maxSubscriptionsPerKey) {
      throw new AppError(
        'RATE_LIMITED',
        `Too many open subscriptions for this API key (at most ${live.maxSubscriptionsPerKey}).`,
      );
    }
    connection.openSubscriptions += 1;
    subscriptionsPerKey.set(principal.keyId, forKey + 1);
    metrics?.liveSubscriptions.inc();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      connection.openSubscriptions -= 1;
      const left = (subscriptionsPerKey.get(principal.keyId) ?? 1) - 1;
      if (left === 0) subscriptionsPerKey.delete(principal.keyId);
      else subscriptionsPerKey.set(principal.keyId, left);
      metrics?.liveSubscriptions.dec();
    };
  }

  // A broadcast hands every member the same rendered text, and most clients number their first
  // subscription "1": the frame is encoded once and the same bytes go to each socket.
  const coalesceWrites = createWriteCoalescer();
  let lastFrame: { prefix: string; rendered: string; bytes: Buffer } | undefined;
  function encodeFrame(prefix: string, rendered: string): Buffer {
    if (lastFrame?.rendered !== rendered || lastFrame.prefix !== prefix) {
      lastFrame = { prefix, rendered, bytes: Buffer.from(`${prefix}${rendered}}`, 'utf8') };
    }
    return lastFrame.bytes;
  }

  const server = makeServer<ConnectionInitMessage['payload'], Connection>({
    schema,
    async onConnect(ctx) {
      // Browsers cannot set headers on a WebSocket, so the key normally comes in connection_init;
      // a server-side client may send it as the upgrade request's X-API-Key instead.
      const params = ctx.connectionParams ?? {};
      const fromParams = params['x-api-key'] ?? params['X-API-Key'] ?? params['apiKey'];
      const key = typeof fromParams === 'string' ? fromParams : presentedKey(ctx.extra.request.headers);
      const principal = await authorize(key);
      await services.limitRequest?.(principal);
      const connection = ctx.extra;
      if (connection.socket.readyState !== connection.socket.OPEN) return false;
      connection.principal = principal;
      connection.presented = key!; // authorize() refused a missing one
      connection.unwatch = keyWatch.watch({
        presented: connection.presented,
        refreshed: (fresh) => void (connection.principal = fresh),
        refused: (error) => {
          metrics?.liveDisconnects.inc({ reason: 'key_refused' });
          closeFor(connection.socket, error);
        },
      });
      return true;
    },
    async onSubscribe(ctx, _id, payload) {
      const connection = ctx.extra;
      // Every operation re-authenticates (the cache applies): a key revoked elsewhere runs
      // nothing new once its cached answer expired; a refusal closes the connection (4401/4403).
      let principal: Principal;
      try {
        principal = await authorize(connection.presented);
      } catch (error) {
        const refused = toAppError(error);
        if (refused.code === 'UNAUTHENTICATED' || refused.code === 'FORBIDDEN') throw refused;
        return [new GraphQLError(refused.message, { originalError: refused })];
      }
      connection.principal = principal;
      try {
        await services.limitRequest?.(principal);
      } catch (error) {
        if (error instanceof AppError) return [new GraphQLError(error.message, { originalError: error })];
        throw error;
      }
      return prepare(payload);
    },
    context(ctx, id, payload, args) {
      const connection = ctx.extra;
      const principal = connection.principal;
      if (!principal) throw new AppError('UNAUTHENTICATED', 'Connection is not acknowledged.');
      const renderKey = `${payload.operationName ?? ''}\n${JSON.stringify(payload.variables ?? {})}\n${payload.query}`;
      const liveOperation: LiveOperation = {
        subscribe(filter: EventFilter, after: string | undefined) {
          const compiled = compileFilter(filter);
          const afterSeq = after === undefined ? undefined : decodeCursor(after, 'after');
          const release = countSubscription(connection, principal);
          const { socket } = connection;
          const framePrefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
          const contextValue = contextOf(services, principal);
          const render = (event: StoredEvent): string => {
            const result = execute({
              schema,
              document: args.document,
              operationName: args.operationName,
              variableValues: args.variableValues,
              contextValue,
              rootValue: { eventLogged: { cursor: encodeCursor(event.seq), node: event } },
            });
            if (result instanceof Promise) throw new Error('eventLogged fields must resolve synchronously');
            return JSON.stringify(formatResult(result));
          };
          const subscription = fanout.subscribe({
            filter: compiled,
            afterSeq,
            renderKey,
            render,
            sink: {
              send(rendered) {
                if (socket.readyState !== socket.OPEN) return;
                coalesceWrites(socket);
                socket.send(encodeFrame(framePrefix, rendered), TEXT_FRAME);
                if (socket.bufferedAmount > live.maxBufferedBytes) closeSlowConsumer(socket);
              },
            },
          });
          return liveIterator(subscription, release, logger);
        },
      };
      return contextOf(services, principal, liveOperation);
    },
    onNext: (_ctx, _id, _payload, _args, result) => formatResult(result) as ExecutionResult,
    onError: (_ctx, _id, _payload, errors) => formatErrors(errors),
  });

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    metrics?.liveConnections.inc();
    const connection: Connection = { socket, request, openSubscriptions: 0 };
    let answeredPing = true;
    const keepAlive = setInterval(() => {
      if (!answeredPing) {
        metrics?.liveDisconnects.inc({ reason: 'keepalive_timeout' });
        socket.terminate();
        return;
      }
      answeredPing = false;
      socket.ping();
    }, live.keepAliveMs);
    socket.on('pong', () => {
      answeredPing = true;
    });
    socket.on('error', (error) => logger.debug({ err: error }, 'WebSocket error'));
    const closed = server.opened(
      {
        protocol: socket.protocol,
        // Not awaiting each write: ws keeps the order, and the slow-consumer bound caps what waits.
        send: (data) => {
          if (socket.readyState === socket.OPEN) socket.send(data);
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', (data: RawData) => {
            const text = rawText(data);
            if (!isClientMessage(text)) {
              socket.close(CloseCode.BadRequest, 'Invalid message received');
              return;
            }
            const refusal = refusalOfChangedText(text);
            if (refusal !== undefined) {
              socket.send(refusal);
              return;
            }
            handle(text).catch((error: unknown) => closeFor(socket, error));
          }),
      },
      connection,
    );
    socket.once('close', (code, reason) => {
      clearInterval(keepAlive);
      connection.unwatch?.();
      metrics?.liveConnections.dec();
      closed(code, reason.toString()).catch((error: unknown) =>
        logger.warn({ err: error }, 'closing a WebSocket connection failed'),
      );
    });
  });

  return {
    /** For the HTTP servers' `upgrade` event: takes /graphql, refuses any other path. */
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
      const path = (request.url ?? '/').split('?')[0]?.replace(/\/+$/, '');
      if (path !== '/graphql') {
        socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      // Browsers send no preflight for a WebSocket and let any page open one: the Origin is the
      // only sign of a foreign page using a key it holds (the key itself is checked after).
      if (!cors.allowsUpgrade(request.headers.origin, request.headers.host)) {
        metrics?.liveDisconnects.inc({ reason: 'origin_refused' });
        logger.warn(
          { origin: request.headers.origin?.slice(0, 200) },
          'refused a WebSocket from an origin not allowed',
        );
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    },

    /** Closes every connection with 1001 Going Away, so clients reconnect to another replica. */
    async close(timeoutMs = 2000): Promise<void> {
      await keyWatch.stop();
      for (const client of wss.clients) {
        metrics?.liveDisconnects.inc({ reason: 'shutdown' });
        client.close(LiveCloseCode.GoingAway, 'Going away');
      }
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          for (const client of wss.clients) client.terminate();
        }, timeoutMs);
        force.unref();
        wss.close(() => {
          clearTimeout(force);
          resolve();
        });
      });
    },
  };
}

export type GraphQLWebSocket = ReturnType<typeof createGraphQLWebSocket>;

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}

/** Subscriptions exist only over WebSocket: the error for one sent over HTTP. */
export function subscriptionNeedsWebSocket(): AppError {
  return badRequest('eventLogged is a subscription: use the graphql-ws protocol over WebSocket at /graphql');
}

/** @throws AppError BAD_REQUEST when the operation did not come over WebSocket. */
export function requireLive(live: LiveOperation | undefined): LiveOperation {
  if (!live) throw subscriptionNeedsWebSocket();
  return live;
}
