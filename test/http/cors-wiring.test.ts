import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.js';
import { preflight, upgradeStatus } from './cors-app.js';

const PAGE = 'http://127.0.0.1:5173';
const OTHER = 'http://127.0.0.1:5174';

// The whole API role as `auditgraph serve` builds it: CORS_ORIGINS reaches REST, /graphql and the upgrade.
describe('CORS_ORIGINS in the running service', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp('embedded', { env: { CORS_ORIGINS: PAGE } });
  });
  afterAll(() => app?.stop());

  it('lets a listed page call /graphql and REST, and refuses a page on another port', async () => {
    expect((await preflight(`${app.baseUrl}/graphql`, PAGE)).status).toBe(204);
    expect((await preflight(`${app.baseUrl}/graphql`, OTHER)).status).toBe(403);
    const answer = await fetch(`${app.baseUrl}/events?limit=1`, {
      headers: { origin: PAGE, 'x-api-key': app.keys.readOnly },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBe(PAGE);
    const foreign = await fetch(`${app.baseUrl}/events?limit=1`, {
      headers: { origin: OTHER, 'x-api-key': app.keys.readOnly },
    });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('opens the live feed for a listed page only', async () => {
    expect(await upgradeStatus(app.baseUrl, PAGE)).toBe(101);
    expect(await upgradeStatus(app.baseUrl, OTHER)).toBe(403);
    expect(await upgradeStatus(app.baseUrl, undefined)).toBe(101);
  });
});
