import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORS_MAX_AGE_SECONDS } from '../../src/http/cors.js';
import { preflight, SECRET, startCorsApp, upgradeStatus, type CorsApp } from './cors-app.js';

const PAGE = 'https://console.example.com';
const OTHER = 'https://evil.example.net';
const GRAPHQL_BODY = JSON.stringify({ query: '{ __typename }' });

describe('CORS with listed origins', () => {
  let app: CorsApp;
  beforeAll(async () => {
    // Two failed authentications per minute: a preflight counted as one would soon be throttled.
    app = await startCorsApp([PAGE, 'http://localhost:5173'], 2);
  });
  afterAll(() => app.close());

  it('grants a preflight from a listed origin: 204, the origin echoed with credentials, methods, headers, max age', async () => {
    for (const path of ['/graphql', '/things']) {
      const response = await preflight(`${app.baseUrl}${path}`, PAGE);
      expect(response.status).toBe(204);
      expect(response.headers.get('access-control-allow-origin')).toBe(PAGE);
      expect(response.headers.get('access-control-allow-credentials')).toBe('true');
      expect(response.headers.get('access-control-allow-methods')).toBe('GET, POST');
      const allowed = response.headers.get('access-control-allow-headers')!.toLowerCase().split(/,\s*/);
      expect(allowed).toEqual(expect.arrayContaining(['x-api-key', 'authorization', 'content-type']));
      expect(response.headers.get('access-control-max-age')).toBe(String(CORS_MAX_AGE_SECONDS));
      expect(response.headers.get('vary')).toBe('Origin');
      expect(await response.text()).toBe('');
    }
  });

  it('refuses a preflight from an origin not listed with 403 and no CORS headers', async () => {
    const response = await preflight(`${app.baseUrl}/graphql`, OTHER);
    expect(response.status).toBe(403);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-methods')).toBeNull();
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('vary')).toBe('Origin');
  });

  it('neither authenticates preflights nor counts them as failed attempts', async () => {
    for (let index = 0; index < 5; index += 1) {
      expect((await preflight(`${app.baseUrl}/things`, PAGE, 'GET')).status).toBe(204);
      expect((await preflight(`${app.baseUrl}/things`, OTHER, 'GET')).status).toBe(403);
    }
    // Past the bound of two failures, a throttled address would be answered 429 here.
    const wrongKey = await fetch(`${app.baseUrl}/things`, { headers: { 'x-api-key': 'wrong_key_123456' } });
    expect(wrongKey.status).toBe(401);
    const failures = await app.metrics.registry.getSingleMetricAsString('auditgraph_auth_failures_total');
    expect(failures).not.toMatch(/reason="throttled"\} [1-9]/);
  });

  it('grants REST and GraphQL answers to a listed origin, with Vary, its errors too', async () => {
    const rest = await fetch(`${app.baseUrl}/things`, { headers: { origin: PAGE, 'x-api-key': SECRET } });
    expect(rest.status).toBe(200);
    expect(rest.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(rest.headers.get('access-control-allow-credentials')).toBe('true');
    expect(rest.headers.get('access-control-expose-headers')).toContain('X-Request-Id');
    expect(rest.headers.get('vary')).toBe('Origin');

    const graphql = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { origin: PAGE, 'x-api-key': SECRET, 'content-type': 'application/json' },
      body: GRAPHQL_BODY,
    });
    expect(graphql.status).toBe(200);
    expect(await graphql.json()).toEqual({ data: { __typename: 'Query' } });
    expect(graphql.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(graphql.headers.get('vary')).toMatch(/\bOrigin\b/);

    // A page must be able to read why it was refused.
    const unauthenticated = await fetch(`${app.baseUrl}/things`, { headers: { origin: PAGE } });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('access-control-allow-origin')).toBe(PAGE);
    expect(unauthenticated.headers.get('vary')).toBe('Origin');
  });

  it('answers an origin not listed as before, without a grant but with Vary', async () => {
    const response = await fetch(`${app.baseUrl}/things`, {
      headers: { origin: OTHER, 'x-api-key': SECRET },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('vary')).toBe('Origin');
  });

  it('leaves answers to requests without an Origin as they were: no CORS headers, no Vary', async () => {
    const response = await fetch(`${app.baseUrl}/things`, { headers: { 'x-api-key': SECRET } });
    expect(response.status).toBe(200);
    expect(response.headers.get('vary')).toBeNull();
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    // An OPTIONS that is not a preflight is still not a method of the route.
    expect((await fetch(`${app.baseUrl}/things`, { method: 'OPTIONS' })).status).toBe(405);
  });

  it('opens the WebSocket for a listed origin, for this host and without an Origin; refuses others with 403', async () => {
    expect(await upgradeStatus(app.baseUrl, PAGE)).toBe(101);
    expect(await upgradeStatus(app.baseUrl, undefined)).toBe(101);
    expect(await upgradeStatus(app.baseUrl, app.baseUrl)).toBe(101);
    expect(await upgradeStatus(app.baseUrl, OTHER)).toBe(403);
    expect(await upgradeStatus(app.baseUrl, `${PAGE}:8443`)).toBe(403);
    const refused = await app.metrics.registry.getSingleMetricAsString('auditgraph_live_disconnects_total');
    expect(refused).toMatch(/reason="origin_refused"\} 2/);
  });
});

describe('CORS_ORIGINS=*', () => {
  let app: CorsApp;
  beforeAll(async () => {
    app = await startCorsApp('*');
  });
  afterAll(() => app.close());

  it('grants any origin with *, never with credentials', async () => {
    const granted = await preflight(`${app.baseUrl}/graphql`, OTHER);
    expect(granted.status).toBe(204);
    expect(granted.headers.get('access-control-allow-origin')).toBe('*');
    expect(granted.headers.get('access-control-allow-credentials')).toBeNull();
    expect(granted.headers.get('access-control-allow-headers')).toMatch(/X-API-Key/);

    const response = await fetch(`${app.baseUrl}/graphql`, {
      method: 'POST',
      headers: { origin: OTHER, 'x-api-key': SECRET, 'content-type': 'application/json' },
      body: GRAPHQL_BODY,
    });
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
    expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
    expect(await upgradeStatus(app.baseUrl, OTHER)).toBe(101);
  });
});

describe('CORS unset: same origin only', () => {
  let app: CorsApp;
  beforeAll(async () => {
    app = await startCorsApp(undefined);
  });
  afterAll(() => app.close());

  it('refuses a foreign origin on preflight, answer and WebSocket, and lets this host’s own pages in', async () => {
    expect((await preflight(`${app.baseUrl}/graphql`, PAGE)).status).toBe(403);
    const answer = await fetch(`${app.baseUrl}/open`, { headers: { origin: PAGE } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    expect(answer.headers.get('vary')).toBe('Origin');
    expect(await upgradeStatus(app.baseUrl, PAGE)).toBe(403);

    // The page this server served: a same-origin fetch needs no grant, and its WebSocket opens.
    const own = await fetch(`${app.baseUrl}/open`, { headers: { origin: app.baseUrl } });
    expect(own.status).toBe(200);
    expect(own.headers.get('access-control-allow-origin')).toBeNull();
    expect(await upgradeStatus(app.baseUrl, app.baseUrl)).toBe(101);
    expect(await upgradeStatus(app.baseUrl, undefined)).toBe(101);
  });
});
