import type { FieldProblem } from '../errors.js';
import { isStorableText } from './storable.js';

const MAX_PAYLOAD_DEPTH = 32;
const MAX_PAYLOAD_NODES = 10_000;
const MAX_STRING_LENGTH = 65_536;
/** Problems reported per event at most: a hostile body must not make the answer huge. */
const MAX_PROBLEMS = 20;

/**
 * What JSON allows but PostgreSQL's jsonb and text refuse (NUL characters,
 * unpaired surrogates), what would not be stored as sent (non-finite numbers,
 * `__proto__` keys), and shapes too large to index or render (deep nesting,
 * too many values, huge strings). Caught at the door, these are a 400 for the
 * caller instead of an accepted event that the worker could never store. The
 * same rules apply to REST and GraphQL, which share this path.
 */
export function storabilityProblems(value: unknown, field: string): FieldProblem[] {
  const walk: Walk = { field, problems: [], nodes: 0 };
  visit(walk, value, field, 0);
  return walk.problems;
}

// Top-level functions over a small state object rather than closures made per
// call: this runs for every accepted event.
interface Walk {
  field: string;
  problems: FieldProblem[];
  nodes: number;
}

function visit(walk: Walk, current: unknown, path: string, depth: number): void {
  if (walk.problems.length >= MAX_PROBLEMS) return;
  walk.nodes += 1;
  if (walk.nodes === MAX_PAYLOAD_NODES + 1) {
    walk.problems.push({ field: walk.field, message: `holds more than ${MAX_PAYLOAD_NODES} values` });
    return;
  }
  if (walk.nodes > MAX_PAYLOAD_NODES) return;
  if (typeof current === 'string') {
    checkString(walk, current, path, '');
    return;
  }
  if (typeof current === 'number') {
    // JSON text cannot hold these; a GraphQL literal or a JavaScript caller can (JSON.stringify writes null).
    if (!Number.isFinite(current)) walk.problems.push({ field: path, message: 'must be a finite number' });
    return;
  }
  if (current === null || typeof current !== 'object') return;
  if (depth >= MAX_PAYLOAD_DEPTH) {
    walk.problems.push({ field: path, message: `nests deeper than ${MAX_PAYLOAD_DEPTH} levels` });
    return;
  }
  if (Array.isArray(current)) {
    for (let index = 0; index < current.length; index += 1)
      visit(walk, current[index], `${path}.${index}`, depth + 1);
    return;
  }
  for (const key in current) {
    if (!Object.hasOwn(current, key)) continue;
    const itemPath = `${path}.${key.length > 64 ? key.slice(0, 64) : key}`;
    if (key === '__proto__') {
      // Copies of the object (zod's, Object.assign) drop or misread it: refused rather than lost.
      walk.problems.push({ field: itemPath, message: "key '__proto__' is not allowed" });
      continue;
    }
    checkString(walk, key, itemPath, 'key ');
    visit(walk, (current as Record<string, unknown>)[key], itemPath, depth + 1);
  }
}

function checkString(walk: Walk, text: string, path: string, what: '' | 'key '): void {
  if (text.length > MAX_STRING_LENGTH) {
    walk.problems.push({ field: path, message: `${what}is longer than ${MAX_STRING_LENGTH} characters` });
  } else if (!isStorableText(text)) {
    walk.problems.push({ field: path, message: `${what}${unstorableMessage}` });
  }
}

const unstorableMessage = 'contains a NUL character or an unpaired surrogate, which cannot be stored';
