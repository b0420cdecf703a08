import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyService } from '../../src/security/api-keys.js';
import { createAuthenticator, digestSecret } from '../../src/security/authenticate.js';
import { createApiKeyStore, type ApiKeyStore } from '../../src/store/api-key-store.js';
import { migrate } from '../../src/store/migrate.js';
import { openPGliteFixture, type DatabaseFixture } from '../support/databases.js';

/**
 * The authenticator remembers secrets it accepted, so repeated requests skip
 * the digests. What it remembers must never outlive a revocation: not past the
 * key cache's TTL when another process revoked, not at all when this one did.
 */
describe('authentication of repeated requests', () => {
  let fixture: DatabaseFixture;
  let store: ApiKeyStore;
  beforeAll(async () => {
    fixture = await openPGliteFixture();
    await migrate(fixture.db);
    store = createApiKeyStore(fixture.db);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  const createKey = async () =>
    createApiKeyService({ store }).create({ name: `k-${Date.now()}`, scopes: ['ingest'] });

  it('refuses a key revoked elsewhere once the cache TTL has passed, though it was accepted just before', async () => {
    const authenticator = createAuthenticator({ store, cacheTtlMs: 100 });
    const { key, secret } = await createKey();
    expect((await authenticator.authenticate(secret)).keyId).toBe(key.id);
    expect((await authenticator.authenticate(secret)).keyId).toBe(key.id);

    // Another process revokes: this one has no forget() call, only its TTL.
    await createApiKeyService({ store }).revoke(key.id);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await expect(authenticator.authenticate(secret)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('refuses a key at once when this process forgets it (its own revocation)', async () => {
    const authenticator = createAuthenticator({ store, cacheTtlMs: 60_000 });
    const { key, secret } = await createKey();
    await authenticator.authenticate(secret);
    await store.revoke(key.id);
    expect((await authenticator.authenticate(secret)).keyId).toBe(key.id); // cached, as documented
    authenticator.forget(secret.slice(0, 11));
    await expect(authenticator.authenticate(secret)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('asks the store again when asked for a fresh answer, and refreshes the cache with it', async () => {
    const authenticator = createAuthenticator({ store, cacheTtlMs: 60_000 });
    const { key, secret } = await createKey();
    await authenticator.authenticate(secret);
    await store.revoke(key.id); // elsewhere: this process is not told
    expect((await authenticator.authenticate(secret)).keyId).toBe(key.id); // cached, as documented
    await expect(authenticator.authenticate(secret, { fresh: true })).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
      message: 'This API key was revoked.',
    });
    // The fresh answer replaced the cached one for every later request.
    await expect(authenticator.authenticate(secret)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('tells onForget listeners the prefix of each key it forgets, until they unsubscribe', async () => {
    const authenticator = createAuthenticator({ store, cacheTtlMs: 60_000 });
    const told: string[] = [];
    const stop = authenticator.onForget((prefix) => told.push(prefix));
    authenticator.forget('ag_aaaaaaaa');
    stop();
    authenticator.forget('ag_bbbbbbbb');
    expect(told).toEqual(['ag_aaaaaaaa']);
  });

  it('records the last use of a stored key on every accepted request, remembered or not', async () => {
    const touched: Array<ReadonlyMap<string, Date>> = [];
    const authenticator = createAuthenticator({
      store: {
        findCredentials: (prefix) => store.findCredentials(prefix),
        touch: async (used) => void touched.push(used),
      },
      cacheTtlMs: 60_000,
    });
    const { key, secret } = await createKey();
    await authenticator.authenticate(secret);
    await authenticator.flushLastUsed();
    await authenticator.authenticate(secret);
    await authenticator.flushLastUsed();
    expect(touched.map((used) => [...used.keys()])).toEqual([[key.id], [key.id]]);
  });

  it('accepts a static key every time and never a different secret after it', async () => {
    const authenticator = createAuthenticator({
      staticKeys: [{ id: 'admin', scopes: ['admin'], sha256: digestSecret('the-admin-secret') }],
    });
    for (let i = 0; i < 3; i += 1)
      expect((await authenticator.authenticate('the-admin-secret')).keyId).toBe('admin');
    await expect(authenticator.authenticate('the-admin-secreT')).rejects.toMatchObject({
      code: 'UNAUTHENTICATED',
    });
  });
});
