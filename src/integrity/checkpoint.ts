import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { canonicalize } from './canonical.js';
import { HASH_BYTES, sha256 } from './merkle.js';

/**
 * A checkpoint: the service's signed statement that the leaves
 * [firstLeaf, treeSize) have Merkle root `rangeRoot`, and that `rootHash`
 * = SHA-256(0x02 || previousRoot || rangeRoot) chains it to every checkpoint
 * before, so one signature commits to the whole history below `treeSize`.
 * Hashes are lowercase hex; the signature is Ed25519 over the UTF-8 bytes of
 * the RFC 8785 canonical JSON of every field but `signature`.
 */
export interface Checkpoint {
  /** 1, 2, 3…: the checkpoint's number. */
  index: string;
  firstLeaf: string;
  treeSize: string;
  /** The seq of leaf treeSize - 1. */
  lastSeq: string;
  rangeRoot: string;
  previousRoot: string;
  rootHash: string;
  /** ISO 8601, UTC, milliseconds. */
  createdAt: string;
  keyId: string;
  /** Base64. */
  signature: string;
}

export type CheckpointBody = Omit<Checkpoint, 'signature'>;

export const ZERO_ROOT = Buffer.alloc(HASH_BYTES);
const CHAIN_PREFIX = Buffer.from([0x02]);

export function chainRoot(previousRoot: Uint8Array, rangeRoot: Uint8Array): Buffer {
  return sha256(CHAIN_PREFIX, previousRoot, rangeRoot);
}

/** The bytes a checkpoint's signature covers. */
function checkpointMessage(body: CheckpointBody): Buffer {
  const { index, firstLeaf, treeSize, lastSeq, rangeRoot, previousRoot, rootHash, createdAt, keyId } = body;
  return Buffer.from(
    canonicalize({
      index,
      firstLeaf,
      treeSize,
      lastSeq,
      rangeRoot,
      previousRoot,
      rootHash,
      createdAt,
      keyId,
    }),
    'utf8',
  );
}

export function signCheckpoint(body: CheckpointBody, privateKey: KeyObject): Checkpoint {
  return { ...body, signature: sign(null, checkpointMessage(body), privateKey).toString('base64') };
}

/**
 * Reads an Ed25519 public key given as PEM (SPKI), base64 of the SPKI DER, or
 * base64/hex of the raw 32-byte key.
 * @throws TypeError when it is none of these.
 */
export function parsePublicKey(key: string | KeyObject): KeyObject {
  if (typeof key !== 'string') return key.type === 'private' ? createPublicKey(key) : key;
  const text = key.trim();
  try {
    if (text.startsWith('-----BEGIN')) {
      const parsed = text.includes('PRIVATE KEY')
        ? createPublicKey(createPrivateKey(text))
        : createPublicKey(text);
      return requireEd25519(parsed);
    }
    const bytes = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (bytes.length === 32) {
      return createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: bytes.toString('base64url') },
        format: 'jwk',
      });
    }
    return requireEd25519(createPublicKey({ key: bytes, format: 'der', type: 'spki' }));
  } catch (error) {
    if (error instanceof TypeError && error.message.startsWith('not an Ed25519')) throw error;
    throw new TypeError('not an Ed25519 public key (PEM, base64 SPKI, or raw 32 bytes in base64 or hex)');
  }
}

function requireEd25519(key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('not an Ed25519 public key');
  return key;
}

/** The raw 32-byte public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'jwk' });
  return Buffer.from(jwk.x ?? '', 'base64url');
}

/** A short, stable name for a key: hex of the first 16 bytes of SHA-256 of its raw public key. */
export function keyIdOf(key: KeyObject): string {
  return sha256(rawPublicKey(key)).subarray(0, 16).toString('hex');
}

/**
 * Whether `checkpoint` is internally consistent (root_hash = chain of its roots)
 * and signed by `publicKey`. Says nothing about the leaves: see verifyEventProof.
 */
export function verifyCheckpoint(checkpoint: Checkpoint, publicKey: string | KeyObject): boolean {
  try {
    const key = parsePublicKey(publicKey);
    const previous = Buffer.from(checkpoint.previousRoot, 'hex');
    const range = Buffer.from(checkpoint.rangeRoot, 'hex');
    if (previous.length !== HASH_BYTES || range.length !== HASH_BYTES) return false;
    if (chainRoot(previous, range).toString('hex') !== checkpoint.rootHash.toLowerCase()) return false;
    return verify(null, checkpointMessage(checkpoint), key, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}
