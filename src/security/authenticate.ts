import { createHash, timingSafeEqual } from 'node:crypto';
import { unauthenticated } from '../errors.js';

export type Scope = 'ingest' | 'read' | 'admin';

/** Who is calling: the key's id (recorded on every event it writes) and what it may do. */
export interface Principal {
  keyId: string;
  scopes: readonly Scope[];
}

/** A key as the service holds it: never the secret, only its digest. */
export interface KnownKey {
  id: string;
  scopes: readonly Scope[];
  sha256: Buffer;
}

export const digestSecret = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest();

/**
 * The one authentication check, used by every front door (REST routes, the
 * GraphQL context, WebSocket `connection_init`). Digests are compared in
 * constant time, so response timing reveals nothing about a key's bytes.
 */
export function createAuthenticator(
  keys: readonly KnownKey[],
  options: { onFailure?: (reason: 'missing' | 'unknown') => void } = {},
) {
  return {
    /**
     * @param presented the secret from `X-API-Key` or `Authorization: Bearer`.
     * @throws AppError UNAUTHENTICATED when it is missing or unknown.
     */
    authenticate(presented: string | undefined): Principal {
      if (presented === undefined || presented === '') {
        options.onFailure?.('missing');
        throw unauthenticated('Missing API key: send it in the X-API-Key header.');
      }
      const digest = digestSecret(presented);
      let match: KnownKey | undefined;
      // Compare against every key, even after a match, so the time taken does not depend on which key matched.
      for (const key of keys) if (timingSafeEqual(key.sha256, digest)) match = key;
      if (!match) {
        options.onFailure?.('unknown');
        throw unauthenticated('Invalid API key.');
      }
      return { keyId: match.id, scopes: match.scopes };
    },
  };
}

export type Authenticator = ReturnType<typeof createAuthenticator>;

/** Reads the presented secret from `X-API-Key` or `Authorization: Bearer …`. */
export function presentedKey(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): string | undefined {
  const apiKey = headers['x-api-key'];
  if (typeof apiKey === 'string') return apiKey.trim();
  const authorization = headers['authorization'];
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(.+)$/i.exec(authorization.trim());
    if (match) return match[1];
  }
  return undefined;
}
