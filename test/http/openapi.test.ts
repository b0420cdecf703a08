import { compileErrors, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

describe('OpenAPI document of the REST shim', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded');
  });
  afterAll(async () => {
    await app?.stop();
  });

  it('is served without a key and is a valid OpenAPI 3.1 document', async () => {
    const response = await fetch(`${app.baseUrl}/openapi.json`);
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(document) as never);
    expect(result.valid ? 'valid' : compileErrors(result)).toBe('valid');
  });

  it('describes every REST path the service answers, and no path it does not', async () => {
    const document = (await (await fetch(`${app.baseUrl}/openapi.json`)).json()) as {
      paths: Record<string, unknown>;
    };
    for (const path of Object.keys(document.paths)) {
      const response = await fetch(`${app.baseUrl}${path}`, { headers: { 'x-api-key': app.keys.admin } });
      expect([path, response.status === 404]).toEqual([path, false]);
    }
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/log', '/events', '/events/types', '/health', '/health/ready']),
    );
  });
});
