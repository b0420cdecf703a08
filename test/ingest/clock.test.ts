import { describe, expect, it } from 'vitest';
import { createIsoClock } from '../../src/ingest/clock.js';

describe('the ingest clock', () => {
  it('tells the time of each call to the millisecond, also when calls share one', () => {
    const times = [Date.UTC(2026, 10, 27, 8, 0, 0, 1), Date.UTC(2026, 10, 27, 8, 0, 0, 1)];
    times.push(times[0]! + 1, times[0]! + 60_000);
    let call = 0;
    const clock = createIsoClock(() => times[call++]!);
    expect(times.map(() => clock())).toEqual(times.map((ms) => new Date(ms).toISOString()));
  });

  it('follows the real clock by default', async () => {
    const clock = createIsoClock();
    const before = Date.now();
    const first = Date.parse(clock());
    await new Promise((resolve) => setTimeout(resolve, 5));
    const second = Date.parse(clock());
    expect(first).toBeGreaterThanOrEqual(before);
    expect(second).toBeGreaterThanOrEqual(first + 4);
    expect(second).toBeLessThanOrEqual(Date.now());
  });
});
