import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { digestSecret, type KnownKey } from './authenticate.js';

const storedKeySchema = z.object({
  id: z.string(),
  prefix: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});

export interface BootstrapKeys {
  keys: KnownKey[];
  /** Set only on the start that created the key: the one time its secret is shown. */
  newSecret?: string;
  /** Where the key's digest lives, to tell the operator. */
  file?: string;
}

const ADMIN_SCOPES = ['ingest', 'read', 'admin'] as const;

/**
 * The admin key: `ADMIN_API_KEY` when set (the spec's variable). Otherwise, in
 * the embedded mode, a key generated on first start whose digest is kept in
 * the data folder; its secret is printed once and never stored.
 */
export async function loadBootstrapKeys(options: {
  adminApiKey: string | undefined;
  dataDir: string;
  allowGenerated: boolean;
}): Promise<BootstrapKeys> {
  if (options.adminApiKey !== undefined) {
    return { keys: [{ id: 'admin', scopes: ADMIN_SCOPES, sha256: digestSecret(options.adminApiKey) }] };
  }
  if (!options.allowGenerated) return { keys: [] };

  const file = path.join(options.dataDir, 'admin-key.json');
  const existing = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (existing !== undefined) {
    const stored = storedKeySchema.parse(JSON.parse(existing));
    return {
      keys: [{ id: stored.id, scopes: ADMIN_SCOPES, sha256: Buffer.from(stored.sha256, 'hex') }],
      file,
    };
  }

  const secret = `ag_${randomBytes(24).toString('base64url')}`;
  const stored = {
    id: 'admin-local',
    prefix: secret.slice(0, 7),
    sha256: digestSecret(secret).toString('hex'),
  };
  await mkdir(options.dataDir, { recursive: true });
  await writeFile(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return {
    keys: [{ id: stored.id, scopes: ADMIN_SCOPES, sha256: Buffer.from(stored.sha256, 'hex') }],
    newSecret: secret,
    file,
  };
}
