import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/canonical.js';
import { chainRoot, signCheckpoint, verifyCheckpoint, ZERO_ROOT } from '../../src/integrity/checkpoint.js';
import { keyIdOf } from '../../src/integrity/checkpoint.js';
import { leafHashOf } from '../../src/integrity/leaf.js';
import { inclusionPath, merkleRoot, rootFromInclusionPath, sha256 } from '../../src/integrity/merkle.js';

const leaf = (n: number) => sha256(Buffer.from([0]), Buffer.from(`leaf ${n}`));

describe('RFC 8785 canonical JSON', () => {
  it('sorts keys by UTF-16 code units and prints numbers in their shortest ECMAScript form', () => {
    // Examples from RFC 8785 §3.2.2 and §3.2.3.
    expect(
      canonicalize({
        numbers: [Number('333333333.33333329'), 1e30, 4.5, 2e-3, 0.000000000000000000000000001],
      }),
    ).toBe('{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}');
    // UTF-16 order puts the emoji (D83D DE00) before U+FB33; code point order would not.
    expect(
      canonicalize({
        '\u20ac': 'Euro',
        '\r': 'CR',
        '\ufb33': 'Dalet',
        '1': 'One',
        '\ud83d\ude00': 'Smiley',
        '\u0080': 'C',
      }),
    ).toBe('{"\\r":"CR","1":"One","\u0080":"C","\u20ac":"Euro","\ud83d\ude00":"Smiley","\ufb33":"Dalet"}');
    expect(canonicalize({ b: [true, null, -0], a: { d: 'x\u0001"', c: 1 } })).toBe(
      '{"a":{"c":1,"d":"x\\u0001\\""},"b":[true,null,0]}',
    );
    expect(() => canonicalize({ x: Number.NaN })).toThrow(TypeError);
  });

  it('hashes an event the same whatever its key order, time zone spelling or Date/string form', () => {
    const event = {
      id: '0190C5B2-0000-7000-8000-000000000001',
      seq: 7n,
      eventType: 'review_started',
      sessionId: 's',
      payload: { b: 1, a: [1, 2] },
      clientTime: '2026-01-02T05:04:05.678+02:00',
      receivedAt: new Date('2026-01-02T03:04:06.000Z'),
      persistedAt: '2026-01-02T03:04:07.000Z',
      apiKeyId: null,
    };
    const same = {
      ...event,
      id: event.id.toLowerCase(),
      seq: '7',
      payload: { a: [1, 2], b: 1 },
      clientTime: '2026-01-02T03:04:05.678Z',
      receivedAt: '2026-01-02T03:04:06Z',
    };
    expect(leafHashOf(same).equals(leafHashOf(event))).toBe(true);
    expect(leafHashOf({ ...same, payload: { a: [2, 1], b: 1 } }).equals(leafHashOf(event))).toBe(false);
    expect(leafHashOf({ ...same, seq: '8' }).equals(leafHashOf(event))).toBe(false);
  });
});

describe('Merkle tree (RFC 9162)', () => {
  it('matches the recursive definition and proves every leaf of trees of 1 to 40 leaves', () => {
    const mth = (leaves: Buffer[]): Buffer => {
      if (leaves.length === 1) return leaves[0]!;
      let k = 1;
      while (k * 2 < leaves.length) k *= 2;
      return sha256(Buffer.from([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
    };
    for (let size = 1; size <= 40; size += 1) {
      const leaves = Array.from({ length: size }, (_, i) => leaf(i));
      const root = merkleRoot(leaves);
      expect(root.equals(mth(leaves))).toBe(true);
      for (let index = 0; index < size; index += 1) {
        const path = inclusionPath(leaves, index);
        expect(rootFromInclusionPath(leaves[index]!, index, size, path)?.equals(root)).toBe(true);
        // The same path for another leaf, or in a tree of another size, does not reach the root.
        expect(rootFromInclusionPath(leaf(1000), index, size, path)?.equals(root) ?? false).toBe(false);
        if (size > 1) {
          expect(
            rootFromInclusionPath(leaves[index]!, (index + 1) % size, size, path)?.equals(root) ?? false,
          ).toBe(false);
        }
      }
    }
  });

  it('signs checkpoints that verify with the public key only, and not once any field changes', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const rangeRoot = merkleRoot([leaf(1), leaf(2)]);
    const checkpoint = signCheckpoint(
      {
        index: '1',
        firstLeaf: '0',
        treeSize: '2',
        lastSeq: '9',
        rangeRoot: rangeRoot.toString('hex'),
        previousRoot: ZERO_ROOT.toString('hex'),
        rootHash: chainRoot(ZERO_ROOT, rangeRoot).toString('hex'),
        createdAt: '2026-11-26T15:00:00.000Z',
        keyId: keyIdOf(publicKey),
      },
      privateKey,
    );
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    expect(verifyCheckpoint(checkpoint, pem)).toBe(true);
    expect(verifyCheckpoint({ ...checkpoint, treeSize: '3' }, pem)).toBe(false);
    expect(verifyCheckpoint({ ...checkpoint, createdAt: '2026-11-26T15:00:00.001Z' }, pem)).toBe(false);
    expect(verifyCheckpoint(checkpoint, generateKeyPairSync('ed25519').publicKey)).toBe(false);
  });
});
