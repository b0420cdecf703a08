/**
 * The sliding window every limit here counts in (the Redis script in redis-rate-limiter.ts is the
 * same algorithm). A window of `windowMs` is cut into {@link BUCKETS_PER_WINDOW} buckets; a
 * request is counted in the bucket of the moment it is allowed, and allowed while the buckets of
 * the window plus the current one ({@link SPAN} buckets) hold fewer than the limit.
 *
 * Why one bucket more than the window: any interval of `windowMs` touches at most SPAN buckets,
 * and the last request allowed in it saw all of them counted, so no interval of `windowMs` ever
 * holds more than the limit: no edge where a fixed window lets twice the limit through. The price
 * is granularity: a request stops counting between `windowMs` and `windowMs` plus one bucket
 * after it was made, never sooner.
 */
export const BUCKETS_PER_WINDOW = 60;
export const SPAN = BUCKETS_PER_WINDOW + 1;

/** The one window every API key's limit counts in: a minute, in one-second buckets. */
export const MINUTE_MS = 60_000;

export interface WindowDecision {
  /** Whether the request fits; counted when it does. */
  allowed: boolean;
  /** What the window held before this request. */
  before: number;
  /**
   * Allowed: milliseconds until the oldest request counted leaves the window (the count drops).
   * Refused: milliseconds until a request would fit (Retry-After).
   */
  waitMs: number;
}

const slotOf = (bucket: number): number => ((bucket % SPAN) + SPAN) % SPAN;

/** One key's counts: SPAN buckets in a ring, and their sum. */
class WindowCounts {
  // Typed: a table of 100,000 windows (the addresses of a flood) stays within tens of MiB.
  private readonly counts = new Int32Array(SPAN);
  /** The newest bucket counted into; older slots hold the buckets before it. */
  private newest = Number.NEGATIVE_INFINITY;
  total = 0;

  /**
   * The bucket of `bucket` or, should the clock step back, the newest one seen (a request is
   * never counted earlier than one before it). Buckets that left the window are emptied.
   */
  private advance(bucket: number): number {
    if (bucket <= this.newest) return this.newest;
    const steps = Math.min(SPAN, bucket - this.newest);
    for (let step = steps - 1; step >= 0; step -= 1) {
      const slot = slotOf(bucket - step);
      this.total -= this.counts[slot]!;
      this.counts[slot] = 0;
    }
    this.newest = bucket;
    return bucket;
  }

  /** Milliseconds from `now` until the buckets that leave first hold `count` requests. */
  private leaving(count: number, now: number, bucketMs: number): number {
    let freed = 0;
    for (let bucket = this.newest - SPAN + 1; bucket <= this.newest; bucket += 1) {
      freed += this.counts[slotOf(bucket)]!;
      if (freed >= count) return Math.max(0, (bucket + SPAN) * bucketMs - now);
    }
    return Math.max(0, (this.newest + SPAN) * bucketMs - now);
  }

  /** What the window holds at `now` (emptying buckets that left it). */
  held(now: number, bucketMs: number): number {
    this.advance(Math.floor(now / bucketMs));
    return this.total;
  }

  /** Counts one request at `now` when fewer than `limit` are in the window. */
  take(now: number, limit: number, bucketMs: number): WindowDecision {
    const bucket = this.advance(Math.floor(now / bucketMs));
    const before = this.total;
    if (before >= limit)
      return { allowed: false, before, waitMs: this.leaving(before - limit + 1, now, bucketMs) };
    this.counts[slotOf(bucket)]! += 1;
    this.total += 1;
    return { allowed: true, before, waitMs: this.leaving(1, now, bucketMs) };
  }

  /** Milliseconds until fewer than `limit` are in the window; 0 when a request fits now. */
  waitBelow(now: number, limit: number, bucketMs: number): number {
    this.advance(Math.floor(now / bucketMs));
    return this.total < limit ? 0 : this.leaving(this.total - limit + 1, now, bucketMs);
  }

  /** Counts one event at `now` whatever the limit (failures, which happen anyway). */
  add(now: number, bucketMs: number): void {
    const bucket = this.advance(Math.floor(now / bucketMs));
    this.counts[slotOf(bucket)]! += 1;
    this.total += 1;
  }

  /** True when nothing counted at or before `now` is left in the window. */
  emptyAt(now: number, bucketMs: number): boolean {
    return this.total === 0 || Math.floor(now / bucketMs) - this.newest >= SPAN;
  }
}

/**
 * Windows by key, bounded: past `maxKeys`, keys whose windows emptied are dropped, then the
 * oldest-created ones (a flood of distinct keys forgets old keys rather than growing memory).
 */
export class WindowTable {
  private readonly windows = new Map<string, WindowCounts>();

  constructor(
    readonly bucketMs: number,
    private readonly maxKeys = 100_000,
  ) {}

  get size(): number {
    return this.windows.size;
  }

  get(key: string): WindowCounts | undefined {
    return this.windows.get(key);
  }

  /** The key's window, created when missing. */
  of(key: string, now: number): WindowCounts {
    let counts = this.windows.get(key);
    if (counts === undefined) {
      if (this.windows.size >= this.maxKeys) this.prune(now);
      counts = new WindowCounts();
      this.windows.set(key, counts);
    }
    return counts;
  }

  private prune(now: number): void {
    for (const [key, counts] of this.windows)
      if (counts.emptyAt(now, this.bucketMs)) this.windows.delete(key);
    for (const key of this.windows.keys()) {
      if (this.windows.size < this.maxKeys * 0.9) break;
      this.windows.delete(key);
    }
  }
}
