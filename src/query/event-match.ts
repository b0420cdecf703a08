import { canonicalize } from '../integrity/canonical.js';
import type { StoredEvent } from '../events/stored-event.js';
import type { CompiledFilter } from './event-queries.js';

/**
 * Whether `event` is one that `filter` selects, with the store's semantics:
 * any of the types, the exact session, received in [from, to), and each payload
 * path holding a value equal to the given one as JSON (jsonb equality: key order
 * does not matter, array order does).
 */
export function matchesFilter(event: StoredEvent, filter: CompiledFilter): boolean {
  if (filter.eventTypes !== undefined && !filter.eventTypes.includes(event.eventType)) return false;
  if (filter.sessionId !== undefined && event.sessionId !== filter.sessionId) return false;
  if (filter.from !== undefined && event.receivedAt < filter.from) return false;
  if (filter.to !== undefined && event.receivedAt >= filter.to) return false;
  for (const match of filter.payloadMatches ?? []) {
    if (!jsonEqual(valueAt(event.payload, match.path), match.value)) return false;
  }
  return true;
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = Array.isArray(current) ? current[Number(key)] : (current as Record<string, unknown>)[key];
  }
  return current;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  return (
    keys.length === Object.keys(right).length &&
    keys.every((key) => Object.hasOwn(right, key) && jsonEqual(left[key], right[key]))
  );
}

/** A stable text for a filter, so subscribers with the same filter share one evaluation per event. */
export function filterKey(filter: CompiledFilter): string {
  return canonicalize([
    filter.eventTypes ? [...filter.eventTypes].sort() : null,
    filter.sessionId ?? null,
    filter.from?.toISOString() ?? null,
    filter.to?.toISOString() ?? null,
    filter.payloadMatches?.map((match) => [match.path, match.value]) ?? null,
  ]);
}
