import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpApp } from '../../src/http/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { createAuthenticator, digestSecret } from '../../src/security/authenticate.js';

describe('request logs', () => {
  const lines: string[] = [];
  const secret = 'log_test_secret_123456';
  let baseUrl: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ level: 'info', destination });
    const app = createHttpApp({
      routes: [
        { method: 'GET', path: '/ok', scope: 'read', handle: () => ({ status: 200, body: { ok: true } }) },
        {
          method: 'GET',
          path: '/boom',
          scope: null,
          handle: () => {
            throw new Error(`connection to postgresql://auditgraph:${secret}@db failed`);
          },
        },
      ],
      authenticator: createAuthenticator({
        staticKeys: [{ id: 'k', scopes: ['read'], sha256: digestSecret(secret) }],
      }),
      logger,
      maxBodyBytes: 1024,
    });
    const [port] = await app.listen([0], '127.0.0.1');
    baseUrl = `http://127.0.0.1:${port as number}`;
    close = () => app.close(1000);
  });
  afterAll(async () => {
    await close?.();
  });

  it('writes one JSON line per request with its id, route, status and time, echoing the id', async () => {
    const response = await fetch(`${baseUrl}/ok?cursor=abc`, {
      headers: { 'x-api-key': secret, 'x-request-id': 'req-42' },
    });
    expect(response.headers.get('x-request-id')).toBe('req-42');
    const generated = await fetch(`${baseUrl}/ok`, { headers: { authorization: `Bearer ${secret}` } });
    const generatedId = generated.headers.get('x-request-id');
    expect(generatedId).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    const records = lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((record) => record['msg'] === 'request');
    expect(records[0]).toMatchObject({
      requestId: 'req-42',
      method: 'GET',
      route: '/ok',
      path: '/ok',
      status: 200,
    });
    expect(typeof records[0]!['ms']).toBe('number');
    expect(records[1]).toMatchObject({ requestId: generatedId, status: 200 });
  });

  it('never writes a key, nor an internal error message, to the log or the answer', async () => {
    await fetch(`${baseUrl}/ok`, { headers: { 'x-api-key': 'wrong-key-also-secret' } });
    const failed = await fetch(`${baseUrl}/boom`);
    expect(failed.status).toBe(500);
    expect(await failed.text()).not.toContain(secret);
    const output = lines.join('\n');
    expect(output).not.toContain('wrong-key-also-secret');
    expect(output).not.toContain(secret);
    expect(output).toContain('postgresql://auditgraph:***@db');
    expect(lines.some((line) => line.includes('"status":401'))).toBe(true);
  });
});
