import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { AppError, badRequest } from '../errors.js';
import { toFieldProblems } from '../validation.js';
import type { ApiKeyRecord, ApiKeyStore } from '../store/api-key-store.js';
import { generateSecret, SCOPES, type Scope } from './authenticate.js';
import { checkText, isStorableText, UNSTORABLE_TEXT } from '../events/storable.js';

const newKeySchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(128, 'must be at most 128 characters')
    .refine(isStorableText, UNSTORABLE_TEXT),
  scopes: z
    .array(z.enum(SCOPES, { error: `must each be one of ${SCOPES.join(', ')}` }))
    .min(1, 'must name at least one scope'),
  rateLimitPerMinute: z
    .number()
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(10_000_000, 'must be at most 10000000')
    .nullable()
    .optional(),
});

export type NewKeyInput = z.input<typeof newKeySchema>;

/** Creating, listing and revoking API keys: for the CLI and the admin GraphQL mutations alike. */
export function createApiKeyService({
  store,
  onRevoked,
}: {
  store: ApiKeyStore;
  onRevoked?: (prefix: string) => void;
}) {
  return {
    /**
     * Creates a key and returns its secret: the only time it exists outside the caller's hands.
     * @throws AppError BAD_REQUEST naming each bad field.
     */
    async create(input: NewKeyInput): Promise<{ key: ApiKeyRecord; secret: string }> {
      const parsed = newKeySchema.safeParse(input);
      if (!parsed.success) {
        const problems = toFieldProblems(parsed.error);
        throw badRequest(
          `Invalid key: ${problems.map((p) => `${p.field} ${p.message}`).join('; ')}`,
          problems,
        );
      }
      const { secret, prefix, salt, secretHash } = generateSecret();
      const key = await store.create({
        id: `key_${randomBytes(10).toString('hex')}`,
        name: parsed.data.name,
        prefix,
        salt,
        secretHash,
        scopes: [...new Set<Scope>(parsed.data.scopes)],
        rateLimitPerMinute: parsed.data.rateLimitPerMinute ?? null,
      });
      return { key, secret };
    },

    list: () => store.list(),

    /** @throws AppError BAD_REQUEST for an id no key can have, NOT_FOUND when there is no such key. */
    async revoke(id: string): Promise<ApiKeyRecord> {
      const key = await store.revoke(checkText(id, 'id', 128));
      if (!key) throw new AppError('NOT_FOUND', `No API key with id '${id}'.`);
      onRevoked?.(key.prefix);
      return key;
    },

    countActive: (scope?: Scope) => store.countActive(scope),
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
