import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { AppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, TallyCounter } from '../observability/metrics.js';
import {
  presentedKey,
  requireScopeOf,
  type Authenticator,
  type Principal,
  type Scope,
} from '../security/authenticate.js';
import type { AuthThrottle } from '../security/auth-throttle.js';
import { addRateLimitHeaders, type RateLimitDecision, type RequestLimiter } from '../security/rate-limit.js';
import { readJsonBody } from './body.js';
import { addCorsHeaders, createCorsPolicy, isPreflight, type CorsOrigins } from './cors.js';
import { toErrorResponse } from './error-response.js';
import { requestIdOf, send, sendText } from './send.js';

export interface RouteContext {
  request: IncomingMessage;
  /** The request target, split without a full URL parse; `searchParams` is parsed on first use. */
  url: { pathname: string; search: string; readonly searchParams: URLSearchParams };
  /** Set when the route requires a scope; routes without one see `undefined`. */
  principal: Principal | undefined;
  /** Values of the path's `{name}` segments, e.g. `{ id }` for `/events/{id}/proof`. */
  params: Readonly<Record<string, string>>;
  /** A method: call it on the context (`context.readJson()`), not detached. */
  readJson(): Promise<unknown>;
  /** The body's value and the JSON text it was parsed from. */
  readJsonWithText(): Promise<{ value: unknown; text: string }>;
}

export interface RouteResult {
  status: number;
  /** Serialized as JSON, unless `raw` says it is already the response text. */
  body: unknown;
  headers?: Record<string, string>;
  raw?: boolean;
}

export interface Route {
  method: 'GET' | 'POST' | 'OPTIONS';
  /** Exact, or with `{name}` segments that match one path segment each. */
  path: string;
  /** The scope a caller's key needs; `null` for open routes such as `/health`. */
  scope: Scope | null;
  /**
   * The route authenticates by itself (GraphQL, in its context function): the failed-authentication
   * throttle guards it as it guards routes with a scope.
   */
  authenticates?: boolean;
  handle(context: RouteContext): Promise<RouteResult> | RouteResult;
}

export interface HttpAppOptions {
  routes: readonly Route[];
  authenticator: Authenticator;
  logger: Logger;
  maxBodyBytes: number;
  metrics?: Metrics;
  /** Applied after authentication on every route that needs a key. */
  limitRequest?: RequestLimiter;
  /**
   * Counts every 401 by client address and, past its bound, refuses requests without a key
   * accepted lately with 429 before authenticating them (no digest, no database lookup).
   */
  authThrottle?: AuthThrottle;
  /** CORS_ORIGINS; unset: pages of other origins get no grant (same origin only). */
  cors?: CorsOrigins;
  /** Takes connection upgrades (WebSocket); without it they are refused. */
  onUpgrade?: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * The HTTP front door: plain `node:http` with an exact-path routing table.
 * One core of Node is the first throughput limit, so a request does no more
 * than routing, one key check, reading its body and the route's own work.
 */
export function createHttpApp(options: HttpAppOptions) {
  const table = new Map<string, Map<string, Route>>();
  for (const route of options.routes) {
    const byMethod = table.get(route.path) ?? new Map<string, Route>();
    byMethod.set(route.method, route);
    table.set(route.path, byMethod);
  }
  // Exact paths are one map lookup; the few templated ones are tried after, in order.
  const templates = [...table.entries()]
    .filter(([routePath]) => routePath.includes('{'))
    .map(([routePath, byMethod]) => {
      const names: string[] = [];
      const pattern = routePath
        .split('/')
        .map((segment) => {
          const name = /^\{(\w+)\}$/.exec(segment)?.[1];
          if (name === undefined) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(name);
          return '([^/]+)';
        })
        .join('/');
      return { routePath, byMethod, names, regex: new RegExp(`^${pattern}$`) };
    });

  function lookup(
    path: string,
  ): { routePath: string; byMethod: Map<string, Route>; params: Record<string, string> } | undefined {
    const exact = table.get(path);
    if (exact && !path.includes('{')) return { routePath: path, byMethod: exact, params: {} };
    for (const template of templates) {
      const match = template.regex.exec(path);
      if (!match) continue;
      const params: Record<string, string> = {};
      template.names.forEach((name, index) => (params[name] = decodeSegment(match[index + 1] ?? '', name)));
      return { routePath: template.routePath, byMethod: template.byMethod, params };
    }
    return undefined;
  }

  const cors = createCorsPolicy(options.cors ?? []);
  const countScopeRefusal = () => options.metrics?.authFailures.inc({ reason: 'scope' });
  const throttle = options.authThrottle;

  /** @throws AppError RATE_LIMITED while the request's address is throttled for failed authentication. */
  const refuseThrottled = (request: IncomingMessage, presented: string | undefined): void => {
    const waitSeconds = throttle?.refusal(request.socket.remoteAddress, presented);
    if (waitSeconds === undefined) return;
    options.metrics?.authFailures.inc({ reason: 'throttled' });
    throw new AppError(
      'RATE_LIMITED',
      'Too many failed authentication attempts from this address; retry later.',
      { retryAfterSeconds: waitSeconds },
    );
  };

  async function dispatch(
    request: IncomingMessage,
    response: ServerResponse,
    matched: { route: string },
    requestId: string,
    corsHeaders: Record<string, string> | undefined,
  ): Promise<void> {
    const url = new RequestTarget(request.url ?? '/');
    const { pathname } = url;
    const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
    const found = lookup(path);
    if (!found) throw new AppError('NOT_FOUND', `No route for ${url.pathname}.`);
    const { byMethod, params } = found;
    matched.route = found.routePath;
    // Before authentication: a preflight carries no key, so it is no failed attempt either.
    if (isPreflight(request.method, request.headers)) {
      const answer = cors.preflight(request.headers.origin!, request.headers.host, [...byMethod.keys()]);
      if (answer.status === 403)
        throw new AppError('FORBIDDEN', 'This origin is not allowed (CORS_ORIGINS).');
      answer.headers['x-request-id'] = requestId;
      response.writeHead(answer.status, answer.headers).end(); // 204: no body, no length
      return;
    }
    const route = byMethod.get(request.method ?? 'GET');
    if (!route) {
      response.setHeader('allow', [...byMethod.keys()].join(', '));
      throw new AppError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${url.pathname}.`);
    }
    let principal: Principal | undefined;
    let limit: RateLimitDecision | undefined;
    if (route.scope !== null) {
      // Awaited only when they have no answer in hand: most requests come with a key accepted
      // lately and find a rate-limit lease, and each await is a turn of the microtask queue.
      const presented = presentedKey(request.headers);
      principal = options.authenticator.recall(presented);
      if (principal === undefined) {
        refuseThrottled(request, presented);
        principal = await options.authenticator.authenticate(presented);
        // Once a key per cache lifetime, not per request: the rest are recalled above.
        if (presented !== undefined) throttle?.vouch(presented);
      }
      requireScopeOf(principal, route.scope, countScopeRefusal);
      if (options.limitRequest) {
        const decision = options.limitRequest(principal);
        limit = decision instanceof Promise ? await decision : decision;
      }
    } else if (route.authenticates && throttle !== undefined) {
      // GraphQL's context function authenticates later; a GraphQL-only client is vouched for by
      // its REST requests or by the key being recalled.
      const presented = presentedKey(request.headers);
      if (options.authenticator.recall(presented) === undefined) refuseThrottled(request, presented);
    }
    const result = await route.handle(
      new RequestContext(request, url, principal, params, options.maxBodyBytes),
    );
    // One headers object per response, filled in place rather than spread into new ones.
    const headers: Record<string, string> = { 'x-request-id': requestId };
    if (limit) addRateLimitHeaders(headers, limit);
    if (result.headers) Object.assign(headers, result.headers);
    if (corsHeaders) addCorsHeaders(headers, corsHeaders);
    if (result.raw) sendText(response, result.status, String(result.body), headers);
    else send(response, result.status, result.body, headers);
  }

  const logRequests = options.logger.isLevelEnabled('info');
  // Bounded: routes of the table (or "unmatched") × methods × statuses. Keyed by the table's own
  // strings and the status number, whose hashes V8 keeps, rather than a label string built per request.
  const routeMetrics = new Map<string, Map<string, RouteMetrics>>();
  const metricsOf = (metrics: Metrics, route: string, method: string): RouteMetrics => {
    let byMethod = routeMetrics.get(route);
    if (!byMethod) routeMetrics.set(route, (byMethod = new Map()));
    let found = byMethod.get(method);
    if (!found) {
      found = { timer: metrics.requestDuration.labels({ method, route }), counters: new Map() };
      byMethod.set(method, found);
    }
    return found;
  };
  const observe = (
    request: IncomingMessage,
    response: ServerResponse,
    route: string,
    startedAt: number,
    requestId: string,
  ) => {
    const method = request.method ?? 'GET';
    const seconds = (performance.now() - startedAt) / 1000;
    if (options.metrics) {
      // Children kept per label set, so a request builds no label object: the counter's counts in a
      // plain number (see talliedCounter); the histogram's still hashes its labels on each observe.
      const { timer, counters } = metricsOf(options.metrics, route, method);
      const status = response.statusCode;
      let counter = counters.get(status);
      if (!counter) {
        counter = options.metrics.apiRequests.tally({ method, route, status: String(status) });
        counters.set(status, counter);
      }
      counter.inc();
      timer.observe(seconds);
    }
    // One line per request; the URL's query string stays out (it may carry a cursor or filter values).
    if (logRequests) {
      options.logger.info(
        {
          requestId,
          method,
          route,
          path: request.url?.split('?')[0],
          status: response.statusCode,
          ms: Math.round(seconds * 1e4) / 10,
        },
        'request',
      );
    }
  };

  const handler = (request: IncomingMessage, response: ServerResponse): void => {
    const startedAt = performance.now();
    const requestId = requestIdOf(request);
    // Labelled by the route table's path, never the raw URL, so label values stay bounded.
    const matched = { route: 'unmatched' };
    // Undefined without an Origin (server-side callers): their answers are as without CORS.
    const corsHeaders = cors.responseHeaders(request.headers.origin, request.headers.host);
    // Observed once the answer is handed to the socket, rather than on 'finish': a listener per
    // request is measurable on the ingest path, and the flush after it is the kernel's time.
    dispatch(request, response, matched, requestId, corsHeaders).then(
      () => {
        // GraphQL answers its own 401s (from its context function).
        if (response.statusCode === 401) throttle?.failed(request.socket.remoteAddress);
        observe(request, response, matched.route, startedAt, requestId);
      },
      (error: unknown) => {
        const { status, body, headers } = toErrorResponse(error);
        if (status >= 500 && !(error instanceof AppError)) {
          options.logger.error(
            { err: error, requestId, method: request.method, path: request.url?.split('?')[0] },
            'request failed',
          );
        }
        headers['x-request-id'] = requestId;
        if (corsHeaders) addCorsHeaders(headers, corsHeaders);
        if (status === 401) throttle?.failed(request.socket.remoteAddress);
        // A body we refused unread would otherwise be parsed as the next request.
        if (status === 413 || status === 415) headers['connection'] = 'close';
        send(response, status, body, headers);
        observe(request, response, matched.route, startedAt, requestId);
      },
    );
  };

  const servers: http.Server[] = [];

  return {
    handler,
    /** Listens on every port (the spec's producer and query ports share one route table). */
    async listen(ports: readonly number[], host: string): Promise<number[]> {
      const bound: number[] = [];
      for (const port of ports) {
        const server = http.createServer({ keepAliveTimeout: 65_000 }, handler);
        if (options.onUpgrade) server.on('upgrade', options.onUpgrade);
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => {
            server.off('error', reject);
            resolve();
          });
        });
        bound.push((server.address() as AddressInfo).port);
      }
      return bound;
    },
    /** Stops accepting, lets requests in flight finish until `timeoutMs`, then cuts what is left. */
    async close(timeoutMs: number): Promise<void> {
      await Promise.all(
        servers.map(
          (server) =>
            new Promise<void>((resolve) => {
              const force = setTimeout(() => server.closeAllConnections(), timeoutMs);
              server.close(() => {
                clearTimeout(force);
                resolve();
              });
              server.closeIdleConnections();
            }),
        ),
      );
    },
  };
}

export type HttpApp = ReturnType<typeof createHttpApp>;

interface RouteMetrics {
  timer: { observe(value: number): void };
  counters: Map<number, TallyCounter>;
}

// Classes rather than object literals with closures: a request builds no functions for them.

/** The request target, split without a full URL parse; the query is parsed on first use. */
class RequestTarget {
  readonly pathname: string;
  readonly search: string;
  private parsedQuery: URLSearchParams | undefined;

  constructor(target: string) {
    const queryAt = target.indexOf('?');
    this.pathname = queryAt < 0 ? target : target.slice(0, queryAt);
    this.search = queryAt < 0 ? '' : target.slice(queryAt);
  }

  get searchParams(): URLSearchParams {
    return (this.parsedQuery ??= new URLSearchParams(this.search));
  }
}

class RequestContext implements RouteContext {
  constructor(
    readonly request: IncomingMessage,
    readonly url: RequestTarget,
    readonly principal: Principal | undefined,
    readonly params: Readonly<Record<string, string>>,
    private readonly maxBodyBytes: number,
  ) {}

  async readJson(): Promise<unknown> {
    return (await this.readJsonWithText()).value;
  }

  readJsonWithText(): Promise<{ value: unknown; text: string }> {
    return readJsonBody(this.request, this.maxBodyBytes);
  }
}

function decodeSegment(segment: string, name: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new AppError('BAD_REQUEST', `${name}: not a valid URL path segment`, {
      problems: [{ field: name, message: 'is not a valid URL path segment' }],
    });
  }
}
