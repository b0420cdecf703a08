import type { Database } from './database.js';

/** A key as lists show it: never its salt or hash. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  rateLimitPerMinute: number | null;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** What authentication needs: the record and its salted hash. */
export interface ApiKeyCredentials extends ApiKeyRecord {
  salt: Buffer;
  secretHash: Buffer;
}

export interface NewApiKey {
  id: string;
  name: string;
  prefix: string;
  salt: Buffer;
  secretHash: Buffer;
  scopes: string[];
  rateLimitPerMinute: number | null;
}

// Explicit selections: the salt and hash leave the database only for authentication.
const publicColumns = {
  id: true,
  name: true,
  prefix: true,
  scopes: true,
  rateLimitPerMinute: true,
  createdAt: true,
  lastUsedAt: true,
  revokedAt: true,
} as const;

export function createApiKeyStore(db: Database) {
  return {
    async create(key: NewApiKey): Promise<ApiKeyRecord> {
      return db.prisma.apiKey.create({
        data: { ...key, salt: new Uint8Array(key.salt), secretHash: new Uint8Array(key.secretHash) },
        select: publicColumns,
      });
    },

    async list(): Promise<ApiKeyRecord[]> {
      return db.prisma.apiKey.findMany({ select: publicColumns, orderBy: { createdAt: 'asc' } });
    },

    async findCredentials(prefix: string): Promise<ApiKeyCredentials | null> {
      const row = await db.prisma.apiKey.findUnique({
        where: { prefix },
        select: { ...publicColumns, salt: true, secretHash: true },
      });
      return row ? { ...row, salt: Buffer.from(row.salt), secretHash: Buffer.from(row.secretHash) } : null;
    },

    /** Marks a key revoked (once; revoking again keeps the first time). Null when no such key. */
    async revoke(id: string): Promise<ApiKeyRecord | null> {
      await db.prisma.apiKey.updateMany({ where: { id, revokedAt: null }, data: { revokedAt: new Date() } });
      return db.prisma.apiKey.findUnique({ where: { id }, select: publicColumns });
    },

    async countActive(scope?: string): Promise<number> {
      return db.prisma.apiKey.count({
        where: { revokedAt: null, ...(scope === undefined ? {} : { scopes: { has: scope } }) },
      });
    },

    /** Records last use times in one statement; never moves a time backwards. */
    async touch(lastUsed: ReadonlyMap<string, Date>): Promise<void> {
      if (lastUsed.size === 0) return;
      await db.query(
        `UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, u.used_at)
           FROM unnest($1::text[], $2::timestamptz[]) AS u(id, used_at) WHERE k.id = u.id`,
        [[...lastUsed.keys()], [...lastUsed.values()].map((date) => date.toISOString())],
      );
    },
  };
}

export type ApiKeyStore = ReturnType<typeof createApiKeyStore>;
