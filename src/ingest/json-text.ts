import type { FieldProblem } from '../errors.js';

/**
 * JSON text that parsing changes silently: numbers that a JavaScript number
 * cannot hold exactly, and repeated keys. `JSON.parse`
 * turns `12345678901234567890` into 12345678901234567000, `1e400` into
 * Infinity (stored as `null` by `JSON.stringify`) and `1e-400` into 0, without
 * a word; an audit trail must not change what it was sent, so such bodies are
 * refused and the caller told to send the value as a string.
 *
 * Hand-written: no JSON library on npm reports numbers by path without
 * building its own copy of the value, and this runs on every ingest request.
 */

/** Problems reported per body at most: a hostile body must not make the answer huge. */
const MAX_PROBLEMS = 20;

/**
 * Text in which every number has at most 15 significant digits and an
 * exponent of at most two digits holds only numbers a double keeps exactly
 * (15 digits is what a double always round-trips, and such numbers stay far
 * from overflow and underflow). Most bodies pass this test and are not scanned.
 */
const MAYBE_INEXACT = /[\d.]{16}|[eE][+-]?\d{3}/;

const NUMBER_TOKEN = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** A JSON number literal's decimal value as sign, digits without leading or trailing zeros, and exponent. */
function decimalOf(literal: string): string {
  let text = literal.toLowerCase();
  let negative = false;
  if (text.startsWith('-')) {
    negative = true;
    text = text.slice(1);
  }
  let exponent = 0;
  const e = text.indexOf('e');
  if (e >= 0) {
    exponent = Number(text.slice(e + 1));
    text = text.slice(0, e);
  }
  const dot = text.indexOf('.');
  if (dot >= 0) {
    exponent -= text.length - dot - 1;
    text = text.slice(0, dot) + text.slice(dot + 1);
  }
  let start = 0;
  while (start < text.length && text[start] === '0') start += 1;
  let end = text.length;
  while (end > start && text[end - 1] === '0') {
    end -= 1;
    exponent += 1;
  }
  // Zero is zero whatever its sign or exponent: -0 is stored as 0, the same number.
  if (start === end) return '0';
  return `${negative ? '-' : ''}${text.slice(start, end)}e${exponent}`;
}

/**
 * Whether the JSON number `literal` survives parsing unchanged: its value as a
 * double, written back (as RFC 8785 and `JSON.stringify` write it), is the same
 * decimal number.
 */
export function isExactNumberLiteral(literal: string): boolean {
  const value = Number(literal);
  return Number.isFinite(value) && decimalOf(String(value)) === decimalOf(literal);
}

/** The message for a number literal that {@link isExactNumberLiteral} refused. */
export function inexactNumberMessage(literal: string): string {
  const shown = literal.length > 40 ? `${literal.slice(0, 40)}…` : literal;
  return Number.isFinite(Number(literal))
    ? `${shown} cannot be stored exactly (a JSON number keeps about 15-17 significant digits); send it as a string`
    : `${shown} is out of the range of a JSON number; send it as a string`;
}

interface Container {
  array: boolean;
  /** An object's keys so far. */
  keys?: Set<string>;
  /** The current member's key (objects) or index (arrays). */
  at: string | number;
  /** In an object: the next string is a key. */
  expectKey: boolean;
}

const DUPLICATE_KEY = 'is a repeated key: parsing keeps only the last value; send each key once';

/** Object keys in a parsed value, counted without recursion (a body nests at most as deep as its text). */
function keyCount(value: unknown): number {
  let count = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (current === null || typeof current !== 'object') continue;
    if (Array.isArray(current)) {
      for (const item of current) pending.push(item);
      continue;
    }
    for (const key in current) {
      count += 1;
      pending.push((current as Record<string, unknown>)[key]);
    }
  }
  return count;
}

const MEMBER_COLON = /"\s*:/g;

/**
 * Whether the text may hold a repeated key: each object member of the text has
 * a quote then a colon, so as many of those as keys in the parsed value means
 * no key was repeated (and parsed away).
 */
function mayRepeatKeys(text: string, value: unknown): boolean {
  let colons = 0;
  MEMBER_COLON.lastIndex = 0;
  while (MEMBER_COLON.test(text)) colons += 1;
  return colons > keyCount(value);
}

/**
 * What parsing a JSON text changed without a word, each named by its dotted
 * path (`payload.amount`, `[3].payload.ids.0`: the form of field problems):
 * numbers a double cannot hold exactly, and repeated keys, of which parsing
 * keeps only the last. `value` is what `text` parsed to.
 */
export function textChangedByParsing(text: string, value: unknown): FieldProblem[] {
  if (!MAYBE_INEXACT.test(text) && !mayRepeatKeys(text, value)) return [];
  return scan(text);
}

/** The numbers that parsing would change, and repeated keys; `text` must be valid JSON. */
function scan(text: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const stack: Container[] = [];
  const pathOf = () => {
    let path = '';
    stack.forEach((container, depth) => {
      if (depth === 0) path = container.array ? `[${container.at}]` : String(container.at);
      else path += `.${container.at}`;
    });
    return path || '(body)';
  };
  for (let index = 0; index < text.length && problems.length < MAX_PROBLEMS;) {
    const char = text[index]!;
    const top = stack.at(-1);
    switch (char) {
      case '{':
        stack.push({ array: false, at: '', expectKey: true, keys: new Set() });
        index += 1;
        break;
      case '[':
        stack.push({ array: true, at: 0, expectKey: false });
        index += 1;
        break;
      case '}':
      case ']':
        stack.pop();
        index += 1;
        break;
      case ',':
        if (top?.array) top.at = (top.at as number) + 1;
        else if (top) top.expectKey = true;
        index += 1;
        break;
      case '"': {
        let end = index + 1;
        while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
        if (top && !top.array && top.expectKey) {
          const key = JSON.parse(text.slice(index, end + 1)) as string;
          top.at = key.length > 64 ? key.slice(0, 64) : key;
          top.expectKey = false;
          if (top.keys!.has(key)) problems.push({ field: pathOf(), message: DUPLICATE_KEY });
          top.keys!.add(key);
        }
        index = end + 1;
        break;
      }
      default:
        if (char === '-' || (char >= '0' && char <= '9')) {
          NUMBER_TOKEN.lastIndex = index;
          const literal = NUMBER_TOKEN.exec(text)![0];
          if (!isExactNumberLiteral(literal))
            problems.push({ field: pathOf(), message: inexactNumberMessage(literal) });
          index += literal.length;
        } else {
          index += 1; // white space, ':', and the letters of true, false and null
        }
    }
  }
  return problems;
}
