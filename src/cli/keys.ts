import type { Config } from '../config/index.js';
import { AppError } from '../errors.js';
import { generateSigningKeyPem } from '../integrity/keys.js';
import { createApiKeyService } from '../security/api-keys.js';
import type { Scope } from '../security/authenticate.js';
import { createApiKeyStore, type ApiKeyRecord } from '../store/api-key-store.js';
import { migrate } from '../store/migrate.js';
import { EX_TEMPFAIL, EX_USAGE } from './commands.js';
import { openForCommand } from './database.js';

export type KeysAction =
  | { action: 'create'; name: string | undefined; scopes: string | undefined; rateLimit: string | undefined }
  | { action: 'list' }
  | { action: 'revoke'; id: string };

/** `auditgraph keys signing`: a new checkpoint signing key, touching no database. */
export function printSigningKey(): number {
  console.error(
    'A new checkpoint signing key; keep it secret (INTEGRITY_SIGNING_KEY or INTEGRITY_SIGNING_KEY_FILE):',
  );
  console.log(generateSigningKeyPem().trim());
  return 0;
}

/**
 * `auditgraph keys create|list|revoke`, on the configured database.
 * @returns 0 done, 1 no such key, 64 a refused name, scope or limit, 75 a server holds the folder.
 */
export async function keysCommand(request: KeysAction, config: Config): Promise<number> {
  const db = await openForCommand(config, 'keys');
  if (!db) return EX_TEMPFAIL;
  try {
    await migrate(db);
    const service = createApiKeyService({ store: createApiKeyStore(db) });
    switch (request.action) {
      case 'create': {
        const { key, secret } = await service.create({
          name: request.name ?? '',
          scopes: (request.scopes ?? '').split(',').filter(Boolean) as Scope[],
          rateLimitPerMinute: request.rateLimit === undefined ? null : Number(request.rateLimit),
        });
        console.error(
          `Created ${key.id} (${key.name}) with scopes ${key.scopes.join(',')}. The secret, shown once:`,
        );
        console.log(secret);
        return 0;
      }
      case 'list': {
        const rows = (await service.list()).map(describeKey);
        console.log(rows.length ? rows.join('\n') : 'No API keys.');
        return 0;
      }
      case 'revoke': {
        const key = await service.revoke(request.id);
        console.log(`Revoked ${key.id} (${key.name}).`);
        return 0;
      }
    }
  } catch (error) {
    if (error instanceof AppError) {
      console.error(error.message);
      return error.code === 'NOT_FOUND' ? 1 : EX_USAGE;
    }
    throw error;
  } finally {
    await db.close();
  }
}

function describeKey(key: ApiKeyRecord): string {
  const state = key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : 'active';
  const limit = key.rateLimitPerMinute === null ? 'default limit' : `${key.rateLimitPerMinute}/min`;
  const used = key.lastUsedAt ? `last used ${key.lastUsedAt.toISOString()}` : 'never used';
  return [key.id, key.prefix, key.name, key.scopes.join(','), limit, state, used].join('\t');
}
