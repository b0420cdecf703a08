import { validate, version } from 'uuid';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/ingest/uuid7.js';

describe('uuidv7', () => {
  it('makes valid version-7, RFC 9562 variant UUIDs carrying the time', () => {
    const at = Date.UTC(2026, 10, 26, 15, 0, 0, 123);
    const id = uuidv7(at);
    expect(validate(id)).toBe(true);
    expect(version(id)).toBe(7);
    expect(id[19]).toMatch(/[89ab]/);
    expect(parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
  });

  it('sorts in the order it made them, also many within one millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => uuidv7(1_800_000_000_000));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    const later = Array.from({ length: 5_000 }, () => uuidv7());
    expect([...later].sort()).toEqual(later);
  });
});
