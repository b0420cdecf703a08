import { describe, expect, it } from 'vitest';
import { compareDelivery } from '../support/fault-load.js';

/** The exactly-once check every fault case ends with must itself catch a loss, a duplicate and a phantom. */
describe('the fault suite’s delivery check', () => {
  const load = {
    acceptedIds: new Map([
      ['a', 1],
      ['b', 2],
    ]),
    attemptedIds: new Map([
      ['a', 1],
      ['b', 2],
      ['c', 3],
      ['r', 4],
    ]),
    refusedOnlyIds: new Set(['r']),
  };

  it('passes when every accepted event is stored once (an unanswered attempt may be stored)', () => {
    const report = compareDelivery(load, [
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
      { id: 'c', n: 3 },
    ]);
    expect(report).toMatchObject({ missing: [], duplicated: [], unexpected: [], storedButRefused: [] });
  });

  it('reports an accepted event that is not stored as missing', () => {
    expect(compareDelivery(load, [{ id: 'a', n: 1 }]).missing).toEqual(['b']);
  });

  it('reports an event stored twice, by id or under another id with the same sequence number', () => {
    const byId = compareDelivery(load, [
      { id: 'a', n: 1 },
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
    ]);
    expect(byId.duplicated).toEqual(['a', 'n=1']);
    const bySequence = compareDelivery(
      { ...load, attemptedIds: new Map([...load.attemptedIds, ['a2', 1]]) },
      [
        { id: 'a', n: 1 },
        { id: 'a2', n: 1 },
        { id: 'b', n: 2 },
      ],
    );
    expect(bySequence.duplicated).toEqual(['n=1']);
  });

  it('reports rows nobody sent, and refused events that were stored anyway', () => {
    const report = compareDelivery(load, [
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
      { id: 'x', n: null },
      { id: 'r', n: 4 },
    ]);
    expect(report.unexpected).toEqual(['x']);
    expect(report.storedButRefused).toEqual(['r']);
  });
});
