/**
 * Rows in pages of `pageSize`, keyset-paged by `load(last row of the previous page)`;
 * the next page is requested as soon as one arrives, so reading overlaps hashing.
 * A page shorter than `pageSize` is the last.
 */
export function prefetchingCursor<Row>(pageSize: number, load: (last: Row | undefined) => Promise<Row[]>) {
  let buffer: Row[] = [];
  let at = 0;
  let pending: Promise<Row[]> | null = load(undefined);
  // Awaited later; a rejection until then must not count as unhandled.
  pending.catch(() => undefined);
  return {
    async peek(): Promise<Row | undefined> {
      if (at < buffer.length) return buffer[at];
      if (!pending) return undefined;
      buffer = await pending;
      at = 0;
      pending = buffer.length < pageSize ? null : load(buffer[buffer.length - 1]);
      pending?.catch(() => undefined);
      return buffer[0];
    },
    advance(): void {
      at += 1;
    },
  };
}
