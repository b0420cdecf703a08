import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * The GraphQL-over-HTTP audit suite of `graphql-http`, against `/graphql`
 * with a valid key (every operation needs one). Every MUST passes; SHOULDs
 * and MAYs are reported, not enforced.
 */
describe('GraphQL over HTTP conformance (graphql-http audits)', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded');
  });
  afterAll(async () => {
    await app?.stop();
  });

  const fetchWithKey: typeof fetch = (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('x-api-key', app.keys.admin);
    return fetch(input, { ...init, headers });
  };

  for (const audit of serverAudits({ url: () => `${app.baseUrl}/graphql`, fetchFn: fetchWithKey })) {
    const must = audit.name.startsWith('MUST');
    it(`${audit.id} ${audit.name}`, async () => {
      const result = await audit.fn();
      if (must) expect(result.status === 'ok' ? 'ok' : `${result.status}: ${result.reason}`).toBe('ok');
      else if (result.status !== 'ok')
        console.info(`[graphql-http] ${audit.name}: ${result.status} (${result.reason})`);
    });
  }
});
