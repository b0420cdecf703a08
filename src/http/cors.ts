/**
 * Cross-origin access (CORS) for the REST routes, `/graphql` and the WebSocket upgrade. Pure
 * decisions over a request's `Origin` and `Host`: the HTTP server and the graphql-ws adapter
 * apply them. CORS binds browsers only; authentication stays the API key's job either way.
 */
import type { CorsOrigins } from '../config/cors-origins.js';

export type { CorsOrigins };

/** Request headers a page may send: the key (either form), JSON bodies, our request id, Apollo's CSRF guard. */
export const CORS_ALLOWED_HEADERS =
  'Authorization, Content-Type, X-API-Key, X-Request-Id, Apollo-Require-Preflight, X-Apollo-Operation-Name';
/** Response headers a page may read beside the safelisted ones. */
export const CORS_EXPOSED_HEADERS =
  'X-Request-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset';
/** Seconds a browser may keep a preflight's answer: a changed CORS_ORIGINS is seen within ten minutes. */
export const CORS_MAX_AGE_SECONDS = 600;

/**
 * How a request's Origin stands: `'none'` (no Origin: a server-side client), `'same'` (the
 * page was served by this host), `'listed'` (in CORS_ORIGINS), `'any'` (CORS_ORIGINS=*), or
 * `'refused'`.
 */
export type OriginStanding = 'none' | 'same' | 'listed' | 'any' | 'refused';

/** The policy for one CORS_ORIGINS value, built once per server. */
export function createCorsPolicy(origins: CorsOrigins) {
  const any = origins === '*';
  const listed = new Set(any ? [] : origins);

  /** Compares exactly: browsers send an origin in its one serialized form, so a near miss is a refusal. */
  function standingOf(origin: string | undefined, host: string | undefined): OriginStanding {
    if (origin === undefined) return 'none';
    if (listed.has(origin)) return 'listed';
    if (isSameOrigin(origin, host)) return 'same';
    return any ? 'any' : 'refused';
  }

  /**
   * The CORS headers of an answer to an actual (not preflight) request, or `undefined` when the
   * request carries no Origin (the answer is as without CORS). A refused or same-origin request
   * gets only `Vary: Origin`: the browser withholds the answer from a foreign page, and a
   * same-origin page needs nothing.
   */
  function responseHeaders(
    origin: string | undefined,
    host: string | undefined,
  ): Record<string, string> | undefined {
    const standing = standingOf(origin, host);
    if (standing === 'none') return undefined;
    const headers: Record<string, string> = { vary: 'Origin' };
    if (standing === 'listed') {
      headers['access-control-allow-origin'] = origin!;
      headers['access-control-allow-credentials'] = 'true';
      headers['access-control-expose-headers'] = CORS_EXPOSED_HEADERS;
    } else if (standing === 'any') {
      headers['access-control-allow-origin'] = '*';
      headers['access-control-expose-headers'] = CORS_EXPOSED_HEADERS;
    }
    return headers;
  }

  /**
   * The answer to a preflight for a route that takes `methods`: 204 with the grant, or 403 with
   * only `Vary: Origin` for an origin not allowed (a refusal a person reading the network panel
   * or a curl can tell from a grant, and that the route's metrics count apart). Sent before any
   * authentication: a preflight carries no key.
   */
  function preflight(
    origin: string,
    host: string | undefined,
    methods: readonly string[],
  ): { status: 204 | 403; headers: Record<string, string> } {
    const standing = standingOf(origin, host);
    if (standing === 'refused' || standing === 'none') return { status: 403, headers: { vary: 'Origin' } };
    const headers: Record<string, string> = {
      vary: 'Origin',
      'access-control-allow-origin': standing === 'any' ? '*' : origin,
      'access-control-allow-methods': methods.join(', '),
      'access-control-allow-headers': CORS_ALLOWED_HEADERS,
      'access-control-max-age': String(CORS_MAX_AGE_SECONDS),
    };
    if (standing !== 'any') headers['access-control-allow-credentials'] = 'true';
    return { status: 204, headers };
  }

  /** A WebSocket upgrade passes without an Origin (non-browser clients) or from an allowed one. */
  function allowsUpgrade(origin: string | undefined, host: string | undefined): boolean {
    return standingOf(origin, host) !== 'refused';
  }

  return { standingOf, responseHeaders, preflight, allowsUpgrade };
}

export type CorsPolicy = ReturnType<typeof createCorsPolicy>;

/** Adds `cors` to a response's `headers` in place, joining a Vary the route set with ours. */
export function addCorsHeaders(headers: Record<string, string>, cors: Record<string, string>): void {
  for (const [name, value] of Object.entries(cors)) {
    const existing = headers[name];
    headers[name] =
      name === 'vary' && existing !== undefined && !/\borigin\b/i.test(existing)
        ? `${existing}, ${value}`
        : value;
  }
}

/** A preflight: OPTIONS from a browser, naming the method it wants to send. */
export function isPreflight(method: string | undefined, headers: Record<string, unknown>): boolean {
  return (
    method === 'OPTIONS' &&
    typeof headers['origin'] === 'string' &&
    headers['access-control-request-method'] !== undefined
  );
}

/**
 * The page was served by the host this request went to. The scheme is not compared: behind a
 * TLS-terminating proxy the page is `https://` while this server sees plain HTTP.
 */
export function isSameOrigin(origin: string, host: string | undefined): boolean {
  if (host === undefined || !URL.canParse(origin)) return false;
  const parsed = new URL(origin);
  // Only an origin in its serialized form: anything else is no browser's and is never echoed.
  if (parsed.origin !== origin) return false;
  if (!/^[^/?#@\s]+$/.test(host)) return false;
  const target = `${parsed.protocol}//${host}`;
  // Parsed with the origin's scheme, so "host:80" and "host" agree as the browser's origin does.
  return URL.canParse(target) && new URL(target).host === parsed.host;
}
