import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET, startCorsApp, type CorsApp } from './cors-app.js';

const LISTED = ['https://console.example.com', 'http://localhost:5173'] as const;

/** Near misses of a listed origin: what a careless check (prefix, suffix, case-folding, parsing) lets through. */
const nearMiss = fc.constantFrom(...LISTED).chain((origin) =>
  fc.constantFrom(
    `${origin}/`,
    `${origin}:444`,
    `${origin}:80`,
    origin.replace(/^https?/, (scheme) => (scheme === 'https' ? 'http' : 'https')),
    origin.toUpperCase(),
    origin.replace('//', '//User@'),
    origin.replace('//', '//user:pass@'),
    `${origin}.evil.test`,
    `${origin}evil.test`,
    origin.replace('//', '//evil.'),
    `${origin}, https://evil.test`,
    `${origin}/path`,
    `${origin}?q`,
    `${origin}#f`,
    origin.slice(0, -1),
    `null`,
    `*`,
  ),
);
/** Printable ASCII, as a browser or a script can put in a header (fetch trims outer blanks). */
const anyValue = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)),
});

describe('Origin header values a property test generates', () => {
  let app: CorsApp;
  beforeAll(async () => {
    app = await startCorsApp([...LISTED]);
  });
  afterAll(() => app.close());

  it('never answer 5xx and never grant an origin that is not listed', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom(...LISTED), nearMiss, anyValue),
        fc.constantFrom('/graphql', '/things', '/open', '/nowhere'),
        fc.boolean(),
        async (origin, path, asPreflight) => {
          const response = await fetch(`${app.baseUrl}${path}`, {
            method: asPreflight ? 'OPTIONS' : 'GET',
            headers: asPreflight
              ? { origin, 'access-control-request-method': 'POST' }
              : { origin, 'x-api-key': SECRET },
          });
          await response.arrayBuffer();
          expect(response.status).toBeLessThan(500);
          const granted = response.headers.get('access-control-allow-origin');
          if (granted !== null) expect(LISTED).toContain(granted);
          if (granted !== null) expect(granted).toBe(origin.trim());
          // The listed origins themselves are granted, so the property is not true for want of any grant.
          if ((LISTED as readonly string[]).includes(origin) && response.status < 400)
            expect(granted).toBe(origin);
          expect(response.headers.get('vary')).toMatch(/\bOrigin\b/);
        },
      ),
      { numRuns: 300 },
    );
  });
});
