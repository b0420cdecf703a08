import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { GraphQLServices } from '../../src/graphql/context.js';
import { DEFAULT_QUERY_LIMITS } from '../../src/graphql/limits.js';
import { createFormatError, createSchema } from '../../src/graphql/server.js';
import { createGraphQLWebSocket } from '../../src/graphql/websocket.js';
import type { Fanout } from '../../src/live/fanout.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  createAuthenticator,
  digestSecret,
  generateSecret,
  type Scope,
} from '../../src/security/authenticate.js';
import type { ApiKeyCredentials } from '../../src/store/api-key-store.js';
import { eventually } from '../support/app.js';
import { openRawSocket, type RawConnection } from './raw-socket.js';
import { TEST_LIVE_LIMITS } from '../support/live-client.js';

/**
 * The WebSocket server alone, over a key store this test controls, with the
 * re-check timer's interval chosen per test: what the timer does and what
 * each operation's own check does can be told apart without racing a clock.
 */
describe('authorization of open graphql-ws connections', () => {
  const disposers: Array<() => Promise<unknown> | unknown> = [];
  afterEach(async () => {
    for (const dispose of disposers.splice(0).reverse()) await dispose();
  });

  const STATIC_SECRET = 'static-reader-secret';

  async function start(options: { cacheTtlMs: number; keyRecheckMs: number }) {
    const keys = new Map<string, ApiKeyCredentials>();
    const lookups = new Map<string, number>();
    let failing: Error | undefined;
    const authenticator = createAuthenticator({
      staticKeys: [{ id: 'static', scopes: ['read'], sha256: digestSecret(STATIC_SECRET) }],
      store: {
        findCredentials: async (prefix) => {
          lookups.set(prefix, (lookups.get(prefix) ?? 0) + 1);
          if (failing) throw failing;
          const key = keys.get(prefix);
          return key ? { ...key, scopes: [...key.scopes] } : null;
        },
        touch: async () => undefined,
      },
      cacheTtlMs: options.cacheTtlMs,
    });
    const logger = createLogger({ level: 'silent' });
    const websocket = createGraphQLWebSocket({
      schema: createSchema(),
      // Only `{ __typename }` runs here: no resolver reaches a service or the fanout.
      services: { authenticator } as unknown as GraphQLServices,
      fanout: {} as Fanout,
      logger,
      queryLimits: DEFAULT_QUERY_LIMITS,
      live: TEST_LIVE_LIMITS,
      introspection: true,
      keyRecheckMs: options.keyRecheckMs,
      formatError: createFormatError(logger),
    });
    const server = http.createServer();
    server.on('upgrade', websocket.handleUpgrade);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    disposers.push(async () => {
      await websocket.close(100);
      await new Promise((resolve) => server.close(resolve));
    });
    const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    const connect = async (secret: string): Promise<RawConnection> => {
      const connection = await openRawSocket(baseUrl, secret);
      disposers.push(() => connection.dispose());
      return connection;
    };
    return {
      authenticator,
      connect,
      lookupsOf: (prefix: string) => lookups.get(prefix) ?? 0,
      failStore: (error: Error | undefined) => void (failing = error),
      addKey(scopes: Scope[]) {
        const { secret, prefix, salt, secretHash } = generateSecret();
        const record: ApiKeyCredentials = {
          id: `key_${prefix}`,
          name: prefix,
          prefix,
          scopes,
          rateLimitPerMinute: null,
          createdAt: new Date(),
          lastUsedAt: null,
          revokedAt: null,
          salt,
          secretHash,
        };
        keys.set(prefix, record);
        return { secret, prefix, record };
      },
    };
  }

  let operations = 0;
  /** Runs `{ __typename }` on the connection: its messages, or the close that came instead. */
  const typename = async (connection: RawConnection) => {
    const id = `op-${(operations += 1)}`;
    connection.send({ id, type: 'subscribe', payload: { query: '{ __typename }' } });
    return connection.outcome(id);
  };

  it('refuses a new operation on a connection whose key was revoked, closing it 4401, before any timer ran', async () => {
    const server = await start({ cacheTtlMs: 0, keyRecheckMs: 3_600_000 });
    const key = server.addKey(['read']);
    const connection = await server.connect(key.secret);
    expect((await typename(connection)).messages.map((message) => message.type)).toEqual([
      'next',
      'complete',
    ]);

    key.record.revokedAt = new Date(); // revoked by another process; the timer would not look for an hour
    const refused = await typename(connection);
    expect(refused.messages).toEqual([]); // nothing ran
    expect(refused.close).toMatchObject({ code: 4401, reason: 'This API key was revoked.' });
  });

  it("refuses a new operation with 4403 once the key lost 'read'", async () => {
    const server = await start({ cacheTtlMs: 0, keyRecheckMs: 3_600_000 });
    const key = server.addKey(['read', 'ingest']);
    const connection = await server.connect(key.secret);
    key.record.scopes = ['ingest'];
    const refused = await typename(connection);
    expect(refused.messages).toEqual([]);
    expect(refused.close).toMatchObject({ code: 4403 });
  });

  it('trusts the cached answer for a new operation within the TTL, as HTTP does', async () => {
    const server = await start({ cacheTtlMs: 3_600_000, keyRecheckMs: 3_600_000 });
    const key = server.addKey(['read']);
    const connection = await server.connect(key.secret);
    key.record.revokedAt = new Date();
    expect((await typename(connection)).messages.map((message) => message.type)).toEqual([
      'next',
      'complete',
    ]);
    // This process's own revocation forgets the key: the connection ends at once, without the timer.
    server.authenticator.forget(key.prefix);
    expect(await connection.closed).toMatchObject({ code: 4401 });
  });

  it('closes idle connections of a revoked key on the timer, and keeps those of static and valid keys', async () => {
    const server = await start({ cacheTtlMs: 0, keyRecheckMs: 20 });
    const revoked = server.addKey(['read']);
    const valid = server.addKey(['read']);
    const [doomed, sameKey, kept, staticKey] = await Promise.all([
      server.connect(revoked.secret),
      server.connect(revoked.secret),
      server.connect(valid.secret),
      server.connect(STATIC_SECRET),
    ]);
    revoked.record.revokedAt = new Date();
    expect(await doomed.closed).toMatchObject({ code: 4401 });
    expect(await sameKey.closed).toMatchObject({ code: 4401 });

    // Three more rounds of the timer, each asking about the valid key again.
    const seen = server.lookupsOf(valid.prefix);
    await eventually(async () => (server.lookupsOf(valid.prefix) >= seen + 3 ? true : undefined));
    for (const connection of [kept, staticKey]) {
      expect((await typename(connection)).messages.map((message) => message.type)).toEqual([
        'next',
        'complete',
      ]);
    }
  });

  it('keeps connections while the key store cannot be reached, and answers operations meanwhile with SERVICE_UNAVAILABLE', async () => {
    const server = await start({ cacheTtlMs: 0, keyRecheckMs: 20 });
    const key = server.addKey(['read']);
    const connection = await server.connect(key.secret);
    server.failStore(
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }),
    );
    const seen = server.lookupsOf(key.prefix);
    await eventually(async () => (server.lookupsOf(key.prefix) >= seen + 3 ? true : undefined));
    const during = await typename(connection);
    expect(during.close).toBeUndefined();
    expect(during.messages).toMatchObject([
      { type: 'error', payload: [{ extensions: { code: 'SERVICE_UNAVAILABLE' } }] },
    ]);

    server.failStore(undefined);
    expect((await typename(connection)).messages.map((message) => message.type)).toEqual([
      'next',
      'complete',
    ]);
  });
});
