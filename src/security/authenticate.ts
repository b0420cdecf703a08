import crypto, { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AppError, unauthenticated } from '../errors.js';
import type { ApiKeyCredentials, ApiKeyStore } from '../store/api-key-store.js';

export const SCOPES = ['ingest', 'read', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export const isScope = (value: string): value is Scope => (SCOPES as readonly string[]).includes(value);

/** Who is calling: the key's id (recorded on every event it writes), what it may do, and its own rate limit. */
export interface Principal {
  keyId: string;
  scopes: readonly Scope[];
  /** Requests per minute for this key; undefined means the service default. */
  rateLimitPerMinute?: number | undefined;
}

/** A key known without the database: ADMIN_API_KEY, or keys a test supplies. Only its digest is held. */
export interface KnownKey {
  id: string;
  scopes: readonly Scope[];
  sha256: Buffer;
  rateLimitPerMinute?: number;
}

// crypto.hash (Node 20.12+) skips the Hash object: over a microsecond less per
// request on the ingest path, where every request digests its key.
export const digestSecret: (secret: string) => Buffer =
  typeof crypto.hash === 'function'
    ? (secret) => crypto.hash('sha256', secret, 'buffer')
    : (secret) => createHash('sha256').update(secret, 'utf8').digest();

const saltedDigest = (salt: Buffer, secret: string): Buffer =>
  createHash('sha256').update(salt).update(secret, 'utf8').digest();

/**
 * Secrets look like `ag_<8 characters>_<43 characters>`: the first part is the
 * display prefix the key is found by, the rest 256 random bits. A fast salted
 * hash is enough for secrets that random (there is nothing to guess), and keeps
 * authentication cheap on the hot path.
 */
const SECRET_FORMAT = /^(ag_[a-z2-7]{8})_[A-Za-z0-9_-]{43}$/;

/** The display prefix a stored key's secret starts with (`ag_xxxxxxxx`); undefined for other secrets. */
export const prefixOf = (presented: string): string | undefined => SECRET_FORMAT.exec(presented)?.[1];

export function generateSecret(): { secret: string; prefix: string; salt: Buffer; secretHash: Buffer } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  const prefix = `ag_${Array.from(randomBytes(8), (byte) => alphabet[byte % 32]).join('')}`;
  const secret = `${prefix}_${randomBytes(32).toString('base64url')}`;
  const salt = randomBytes(16);
  return { secret, prefix, salt, secretHash: saltedDigest(salt, secret) };
}

export type AuthFailure = 'missing' | 'unknown' | 'revoked';

export interface AuthenticatorOptions {
  /** Keys held in memory (ADMIN_API_KEY); checked before the database. */
  staticKeys?: readonly KnownKey[];
  /** Keys created with `auditgraph keys create` or the admin mutations. */
  store?: Pick<ApiKeyStore, 'findCredentials' | 'touch'>;
  /**
   * How long a key looked up in the database is trusted without asking again.
   * A revocation made by another process takes effect within this time.
   */
  cacheTtlMs?: number;
  onFailure?: (reason: AuthFailure) => void;
}

/**
 * The one authentication check, used by every front door (REST routes, the
 * GraphQL context, WebSocket `connection_init`). Digests are compared in
 * constant time; secrets are never logged or stored.
 */
export function createAuthenticator(options: AuthenticatorOptions = {}) {
  const staticKeys = options.staticKeys ?? [];
  const cacheTtlMs = options.cacheTtlMs ?? 5000;
  const cache = new Map<string, { credentials: ApiKeyCredentials | null; until: number }>();
  const lastUsed = new Map<string, Date>();
  // Secrets accepted lately, so a busy caller's requests skip the digests: a static key for good,
  // a stored one as long as its credentials are cached (a revocation still lands within the TTL).
  // A lookup tells only whether this exact secret was accepted, which the answer tells anyway.
  const accepted = new Map<string, { principal: Principal; until: number; storedKeyId?: string }>();
  const remember = (presented: string, principal: Principal, until: number, storedKeyId?: string) => {
    if (accepted.size >= 1000) accepted.clear(); // bounded; refilled by the next requests
    accepted.set(presented, { principal, until, storedKeyId });
  };

  const fail = (reason: AuthFailure, message: string): never => {
    options.onFailure?.(reason);
    throw unauthenticated(message);
  };

  const forgotten = new Set<(prefix: string) => void>();

  async function credentialsFor(prefix: string, fresh: boolean): Promise<ApiKeyCredentials | null> {
    const cached = fresh ? undefined : cache.get(prefix);
    if (cached && cached.until > Date.now()) return cached.credentials;
    const credentials = (await options.store?.findCredentials(prefix)) ?? null;
    if (cacheTtlMs > 0) {
      if (cache.size > 10_000) cache.clear(); // bounded: unknown prefixes cannot grow it without limit
      cache.set(prefix, { credentials, until: Date.now() + cacheTtlMs });
    }
    return credentials;
  }

  /** The principal of a secret accepted lately and still trusted, without a digest or a promise. */
  const recall = (presented: string | undefined): Principal | undefined => {
    if (presented === undefined) return undefined;
    const known = accepted.get(presented);
    if (known === undefined || known.until <= Date.now()) return undefined;
    if (known.storedKeyId !== undefined) lastUsed.set(known.storedKeyId, new Date());
    return known.principal;
  };

  return {
    recall,

    /** How long a stored key's answer is trusted (KEY_CACHE_TTL_MS): revocations elsewhere land within it. */
    cacheTtlMs,

    /**
     * @param presented the secret from `X-API-Key` or `Authorization: Bearer`.
     * @param options.fresh asks the store again instead of trusting the cache (and refreshes it):
     *   for holders of long-lived connections, which must notice a revocation made elsewhere.
     * @throws AppError UNAUTHENTICATED when it is missing, unknown or revoked.
     */
    async authenticate(presented: string | undefined, options: { fresh?: boolean } = {}): Promise<Principal> {
      if (presented === undefined || presented === '') {
        return fail('missing', 'Missing API key: send it in the X-API-Key header.');
      }
      const fresh = options.fresh === true;
      const known = fresh ? undefined : recall(presented);
      if (known !== undefined) return known;
      const digest = digestSecret(presented);
      let match: KnownKey | undefined;
      // Every static key is compared, so timing does not tell which one matched.
      for (const key of staticKeys) if (timingSafeEqual(key.sha256, digest)) match = key;
      if (match) {
        const principal = {
          keyId: match.id,
          scopes: match.scopes,
          rateLimitPerMinute: match.rateLimitPerMinute,
        };
        remember(presented, principal, Number.POSITIVE_INFINITY);
        return principal;
      }

      const prefix = prefixOf(presented);
      const credentials = prefix === undefined ? null : await credentialsFor(prefix, fresh);
      // A fresh answer replaces what was remembered, also when it is a refusal.
      if (fresh) accepted.delete(presented);
      if (
        !credentials ||
        !timingSafeEqual(credentials.secretHash, saltedDigest(credentials.salt, presented))
      ) {
        return fail('unknown', 'Invalid API key.');
      }
      if (credentials.revokedAt !== null) return fail('revoked', 'This API key was revoked.');
      lastUsed.set(credentials.id, new Date());
      const principal = {
        keyId: credentials.id,
        scopes: credentials.scopes.filter(isScope),
        rateLimitPerMinute: credentials.rateLimitPerMinute ?? undefined,
      };
      const cachedUntil = cache.get(prefix!)?.until;
      if (cachedUntil !== undefined) remember(presented, principal, cachedUntil, credentials.id);
      return principal;
    },

    /** Forgets a cached key at once (this process revoked it), and tells every `onForget` listener. */
    forget(prefix: string): void {
      cache.delete(prefix);
      for (const secret of accepted.keys()) {
        if (prefixOf(secret) === prefix) accepted.delete(secret);
      }
      for (const listener of forgotten) listener(prefix);
    },

    /**
     * Calls `listener` with the prefix of each key this process forgets (revokes), so holders
     * of open connections can end them at once. Returns the function that removes it.
     */
    onForget(listener: (prefix: string) => void): () => void {
      forgotten.add(listener);
      return () => void forgotten.delete(listener);
    },

    /** Writes the last-use times gathered since the previous flush. */
    async flushLastUsed(): Promise<void> {
      if (!options.store || lastUsed.size === 0) return;
      const batch = new Map(lastUsed);
      lastUsed.clear();
      await options.store.touch(batch);
    },
  };
}

export type Authenticator = ReturnType<typeof createAuthenticator>;

/**
 * The one scope check, for REST routes and GraphQL resolvers alike.
 * @throws AppError FORBIDDEN when the principal lacks `scope`, after calling `onForbidden` (metrics).
 */
export function requireScopeOf(principal: Principal, scope: Scope, onForbidden?: () => void): void {
  if (principal.scopes.includes(scope)) return;
  onForbidden?.();
  throw new AppError('FORBIDDEN', `This API key lacks the '${scope}' scope.`);
}

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
