import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leafHashOf, prepareLeafHash, type LeafRecord } from '../../src/integrity/leaf.js';

const isoTime = fc.integer({ min: 0, max: 4_102_444_800_000 }).map((ms) => new Date(ms).toISOString());

const leafRecord: fc.Arbitrary<LeafRecord> = fc.record({
  id: fc.uuid(),
  seq: fc.bigInt({ min: 1n, max: 2n ** 62n }).map(String),
  eventType: fc.constantFrom('review_started', 'llm_query_sent', 'error_occurred'),
  sessionId: fc.string({ minLength: 1, maxLength: 40 }),
  payload: fc.dictionary(fc.string(), fc.jsonValue()) as fc.Arbitrary<Record<string, unknown>>,
  clientTime: fc.option(isoTime, { nil: null }),
  receivedAt: isoTime,
  persistedAt: isoTime,
  apiKeyId: fc.option(fc.string({ maxLength: 20 }), { nil: null }),
});

describe('the insert path’s split leaf hash', () => {
  it('hashes exactly what leafHashOf hashes (the RFC 8785 form a client rebuilds)', () => {
    fc.assert(
      fc.property(leafRecord, (record) => {
        const { seq, persistedAt, ...rest } = record;
        expect(prepareLeafHash(rest)(seq, persistedAt).toString('hex')).toBe(
          leafHashOf(record).toString('hex'),
        );
      }),
      { numRuns: 2000 },
    );
  });
});
