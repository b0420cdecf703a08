import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { keyIdOf, rawPublicKey } from './checkpoint.js';

/** The checkpoint signing key, with what the service publishes of it. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyId: string;
  /** Where it came from, for the start-up log (never the key itself). */
  source: 'configuration' | 'file' | 'generated' | 'data folder';
}

/** The public half, as `GET /integrity/public-key` and GraphQL `integrityPublicKey` answer it. */
export interface PublishedKey {
  keyId: string;
  algorithm: 'Ed25519';
  /** SPKI PEM. */
  publicKeyPem: string;
  /** The raw 32-byte key, base64. */
  publicKey: string;
}

export const EMBEDDED_KEY_FILE = 'integrity-signing-key.pem';

/**
 * Reads an Ed25519 private key given as PKCS#8 PEM or base64 of the PKCS#8 DER.
 * @throws Error naming the format expected (never echoing the value).
 */
function parsePrivateKey(text: string): KeyObject {
  let key: KeyObject;
  try {
    const trimmed = text.trim();
    key = trimmed.startsWith('-----BEGIN')
      ? createPrivateKey(trimmed)
      : createPrivateKey({ key: Buffer.from(trimmed, 'base64'), format: 'der', type: 'pkcs8' });
  } catch {
    throw new Error('the integrity signing key is not a PKCS#8 private key (PEM, or base64 of the DER)');
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`the integrity signing key must be Ed25519, not ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}

export function generateSigningKeyPem(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

function fromPrivate(privateKey: KeyObject, source: SigningKey['source']): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey), source };
}

/**
 * The signing key: INTEGRITY_SIGNING_KEY, else INTEGRITY_SIGNING_KEY_FILE,
 * else (embedded mode only) the key in the data folder, generated there with
 * mode 0600 on first start. On PostgreSQL without a key, null: the service
 * then writes no checkpoints (and says so loudly at start-up).
 */
export async function loadSigningKey(options: {
  signingKey: string | undefined;
  signingKeyFile: string | undefined;
  /** Set in embedded mode: where to keep a generated key. */
  dataDir: string | undefined;
  /** False for readers (`auditgraph verify`): a new key would only fail the old signatures. */
  generate?: boolean;
}): Promise<SigningKey | null> {
  if (options.signingKey !== undefined)
    return fromPrivate(parsePrivateKey(options.signingKey), 'configuration');
  if (options.signingKeyFile !== undefined) {
    return fromPrivate(parsePrivateKey(await readFile(options.signingKeyFile, 'utf8')), 'file');
  }
  if (options.dataDir === undefined) return null;
  const file = path.join(options.dataDir, EMBEDDED_KEY_FILE);
  try {
    return fromPrivate(parsePrivateKey(await readFile(file, 'utf8')), 'data folder');
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
  }
  if (options.generate === false) return null;
  await mkdir(options.dataDir, { recursive: true });
  const pem = generateSigningKeyPem();
  // 'wx': two processes starting together must not overwrite each other's key.
  try {
    await writeFile(file, pem, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EEXIST') throw error;
    return fromPrivate(parsePrivateKey(await readFile(file, 'utf8')), 'data folder');
  }
  await chmod(file, 0o600);
  return fromPrivate(parsePrivateKey(pem), 'generated');
}

export function publishedKey(key: SigningKey): PublishedKey {
  return {
    keyId: key.keyId,
    algorithm: 'Ed25519',
    publicKeyPem: key.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicKey: rawPublicKey(key.publicKey).toString('base64'),
  };
}
