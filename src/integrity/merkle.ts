import { createHash } from 'node:crypto';

/**
 * Merkle tree hashing of RFC 9162 (Certificate Transparency 2.0) §2.1, over
 * SHA-256: leaves are H(0x00 || data), interior nodes H(0x01 || left || right),
 * so a leaf can never pass for a node. A tree of n leaves splits at the largest
 * power of two below n. Proof generation and checking follow §2.1.3.
 */

export const HASH_BYTES = 32;

const NODE_PREFIX = Buffer.from([0x01]);

export function sha256(...parts: readonly Uint8Array[]): Buffer {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return sha256(NODE_PREFIX, left, right);
}

/** The largest power of two strictly below n (n ≥ 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The root of the tree over `leaves` (leaf hashes). Bottom-up and iterative, so a
 * range of a million leaves costs n - 1 hashes and no deep recursion. Pairing
 * adjacent nodes level by level and carrying an odd last node up unchanged
 * builds exactly RFC 9162's left-complete tree.
 * @throws RangeError for an empty list: an empty range is never checkpointed.
 */
export function merkleRoot(leaves: readonly Uint8Array[]): Buffer {
  if (leaves.length === 0) throw new RangeError('merkleRoot: no leaves');
  let level: Uint8Array[] = [...leaves];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return Buffer.from(level[0]!);
}

/** The audit path of leaf `index` (RFC 9162 §2.1.3.1), bottom-up: the siblings to hash with. */
export function inclusionPath(leaves: readonly Uint8Array[], index: number): Buffer[] {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) {
    throw new RangeError(`inclusionPath: leaf ${index} is outside a tree of ${leaves.length}`);
  }
  const path: Buffer[] = [];
  const walk = (start: number, end: number, target: number): void => {
    const n = end - start;
    if (n <= 1) return;
    const k = splitPoint(n);
    if (target < start + k) {
      walk(start, start + k, target);
      path.push(merkleRoot(leaves.slice(start + k, end)));
    } else {
      walk(start + k, end, target);
      path.push(merkleRoot(leaves.slice(start, start + k)));
    }
  };
  walk(0, leaves.length, index);
  return path;
}

/**
 * Recomputes the root from a leaf hash and its audit path (RFC 9162 §2.1.3.2).
 * @returns the root, or null when the path's length does not fit `index` in a tree of `size`.
 */
export function rootFromInclusionPath(
  leafHash: Uint8Array,
  index: number,
  size: number,
  path: readonly Uint8Array[],
): Buffer | null {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHash);
  for (const p of path) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? r : null;
}
