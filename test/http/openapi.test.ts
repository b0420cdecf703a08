import { compileErrors, dereference, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startTestApp, type TestApp } from '../support/app.js';
import { documentedOperations, restRoutes, type OpenApiDocument } from './openapi-support.js';

describe('OpenAPI document of the REST shim', () => {
  let app: TestApp;
  let document: OpenApiDocument;
  beforeAll(async () => {
    app = await startTestApp('embedded');
    document = (await (await fetch(`${app.baseUrl}/openapi.json`)).json()) as OpenApiDocument;
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('is served without a key and is a valid OpenAPI 3.1 document', async () => {
    const response = await fetch(`${app.baseUrl}/openapi.json`);
    expect(response.status).toBe(200);
    expect(document.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(document) as never);
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
  });

  it('describes every REST path the service answers, and no path it does not', async () => {
    for (const path of Object.keys(document.paths)) {
      const response = await fetch(`${app.baseUrl}${path}`, { headers: { 'x-api-key': app.keys.admin } });
      expect([path, response.status === 404]).toEqual([path, false]);
    }
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/log', '/events', '/events/types', '/health', '/health/ready']),
    );
  });

  it('documents each REST route once, with its method, and no route the server lacks', () => {
    const routes = restRoutes().map((route) => `${route.method} ${route.path}`);
    const operations = documentedOperations(document).map(({ method, path }) => `${method} ${path}`);
    expect([...operations].sort()).toEqual([...routes].sort());
  });

  it('gives every operation a unique operationId, and security [] exactly on the routes open without a key', () => {
    const scopes = new Map(restRoutes().map((route) => [`${route.method} ${route.path}`, route.scope]));
    const operations = documentedOperations(document);
    const ids = operations.map(({ operation }) => operation.operationId);
    expect(ids.every((id) => typeof id === 'string' && id.length > 0)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { method, path, operation } of operations) {
      const open = scopes.get(`${method} ${path}`) === null;
      expect([method, path, operation.security]).toEqual([
        method,
        path,
        open ? [] : [{ apiKey: [] }, { bearer: [] }],
      ]);
    }
  });

  it('describes the answers the service gives: each body matches the schema of its status', async () => {
    const resolved = (await dereference(structuredClone(document) as never)) as unknown as OpenApiDocument;
    const answers = async (method: 'GET' | 'POST', path: string, init: RequestInit = {}) => {
      const response = await fetch(`${app.baseUrl}${path}`, {
        method,
        ...init,
        headers: { 'x-api-key': app.keys.admin, 'content-type': 'application/json' },
      });
      const route = path.split('?')[0]!;
      const declared = resolved.paths[route]?.[method.toLowerCase()]?.responses?.[String(response.status)];
      const schema = declared?.content?.['application/json']?.schema;
      expect([method, path, response.status, schema === undefined]).toEqual([
        method,
        path,
        response.status,
        false,
      ]);
      const body: unknown = await response.json();
      const checked = z.fromJSONSchema(schema as never).safeParse(body);
      expect([method, path, checked.error?.issues ?? []]).toEqual([method, path, []]);
    };
    const event = { session_id: 'openapi-1', event_type: 'review_started', payload: { pr: 1 } };
    await answers('POST', '/log', { body: JSON.stringify(event) });
    await answers('POST', '/log', { body: JSON.stringify([event, event]) });
    await answers('POST', '/log', { body: JSON.stringify({ ...event, event_type: 'nope' }) });
    for (const path of [
      '/health',
      '/health/ready',
      '/events',
      '/events?limit=0',
      '/events/types',
      '/analytics/usage',
      '/analytics/llm?days=30',
      '/analytics/performance',
      '/integrity/verify',
      '/integrity/checkpoint',
      '/integrity/public-key',
      '/dead-letters',
    ]) {
      await answers('GET', path);
    }
    await answers('POST', '/dead-letters/replay', { body: JSON.stringify({ ids: ['1-1'] }) });
  });
});
