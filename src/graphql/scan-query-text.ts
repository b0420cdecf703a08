import { selectionsRefusal, type Refusal } from './measure-document.js';

export interface TextLimits {
  maxSelections: number;
  /** Brackets of any kind (`{`, `[`, `(`) open at once. */
  maxNesting: number;
}

export interface TextScan {
  /** Selections written (fields, fragment spreads, inline fragments), counted up to where the scan stopped. */
  selections: number;
  /** The most brackets open at once, up to where the scan stopped. */
  nesting: number;
  refusal?: Refusal;
}

const enum Char {
  Tab = 9,
  NewLine = 10,
  Return = 13,
  Space = 32,
  Quote = 34,
  Hash = 35,
  OpenParen = 40,
  CloseParen = 41,
  Comma = 44,
  Dot = 46,
  Colon = 58,
  At = 64,
  OpenBracket = 91,
  Backslash = 92,
  CloseBracket = 93,
  OpenBrace = 123,
  CloseBrace = 125,
  ByteOrderMark = 0xfeff,
}

const isNameStart = (code: number) =>
  (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95;
const isNameContinue = (code: number) => isNameStart(code) || (code >= 48 && code <= 57);

/**
 * Counts a query's selections and bracket nesting from its text, before
 * parsing it: one pass over the characters, no tokens or nodes allocated,
 * stopping as soon as either passes its limit. Parsing 20,000 characters
 * costs far more (hundreds of microseconds to milliseconds, mostly
 * allocation), and graphql's recursive parser overflows the stack on a few
 * thousand nested brackets, which no limit on the parsed document can catch.
 *
 * Outside parentheses (arguments, variable definitions) and inside a
 * selection set, a selection starts with a name that follows no `@` (a
 * directive) and no `...` (a fragment's name or `on` and its type), or with
 * `...`; an alias and its field are one selection. For any text that parses,
 * `selections` equals the number of Field, FragmentSpread and InlineFragment
 * nodes (test/graphql/query-limits.test.ts checks it); for text that does not,
 * it is a count of something the parser would refuse anyway.
 */
export function scanQueryText(text: string, limits: TextLimits): TextScan {
  let selections = 0;
  let nesting = 0;
  let deepest = 0;
  let braces = 0; // selection-set braces (outside parentheses)
  let parens = 0;
  // What the next name is: a selection, or a name to skip (directive, fragment, type, aliased field).
  let skipNames = 0;
  let afterSpread = false;
  const length = text.length;
  let at = 0;

  const skipIgnored = (from: number): number => {
    let index = from;
    while (index < length) {
      const code = text.charCodeAt(index);
      if (
        code === Char.Space ||
        code === Char.Comma ||
        code === Char.NewLine ||
        code === Char.Return ||
        code === Char.Tab ||
        code === Char.ByteOrderMark
      ) {
        index += 1;
      } else if (code === Char.Hash) {
        while (index < length) {
          const inComment = text.charCodeAt(index);
          if (inComment === Char.NewLine || inComment === Char.Return) break;
          index += 1;
        }
      } else break;
    }
    return index;
  };

  while (at < length) {
    at = skipIgnored(at);
    if (at >= length) break;
    const code = text.charCodeAt(at);
    if (isNameStart(code)) {
      const start = at;
      at += 1;
      while (at < length && isNameContinue(text.charCodeAt(at))) at += 1;
      if (parens > 0 || braces === 0) continue;
      if (afterSpread) {
        afterSpread = false;
        // `... on Type` skips the type too; `...Name` is a spread of that fragment.
        if (at - start === 2 && text.startsWith('on', start)) skipNames = 1;
        continue;
      }
      if (skipNames > 0) {
        skipNames -= 1;
        continue;
      }
      selections += 1;
      if (selections > limits.maxSelections)
        return refused(selections, deepest, selectionsRefusal(limits.maxSelections));
      // An alias: the field's own name comes after the colon.
      if (text.charCodeAt(skipIgnored(at)) === Char.Colon) skipNames = 1;
      continue;
    }
    switch (code) {
      case Char.Quote:
        at = skipString(text, at);
        continue;
      case Char.At:
        // A directive's name; after `...` it makes an inline fragment without a type.
        afterSpread = false;
        if (parens === 0 && braces > 0) skipNames = 1;
        break;
      case Char.Dot:
        if (text.startsWith('...', at)) {
          at += 3;
          if (parens === 0 && braces > 0) {
            selections += 1;
            if (selections > limits.maxSelections) {
              return refused(selections, deepest, selectionsRefusal(limits.maxSelections));
            }
            afterSpread = true;
          }
          continue;
        }
        break;
      case Char.OpenBrace:
      case Char.OpenBracket:
      case Char.OpenParen:
        nesting += 1;
        if (nesting > deepest) deepest = nesting;
        if (deepest > limits.maxNesting) {
          return refused(selections, deepest, {
            limit: 'maxNesting',
            message: `Document nests brackets more than ${limits.maxNesting} deep; the limit is ${limits.maxNesting}.`,
          });
        }
        if (code === Char.OpenParen) parens += 1;
        else if (code === Char.OpenBrace && parens === 0) braces += 1;
        afterSpread = false; // `... {` and `... @include(…) {`: an inline fragment without a type
        break;
      case Char.CloseBrace:
      case Char.CloseBracket:
      case Char.CloseParen:
        nesting -= 1;
        if (code === Char.CloseParen) parens = Math.max(0, parens - 1);
        else if (code === Char.CloseBrace && parens === 0) braces = Math.max(0, braces - 1);
        break;
      default:
        break;
    }
    at += 1;
  }
  return { selections, nesting: deepest };
}

function refused(selections: number, nesting: number, refusal: Refusal): TextScan {
  return { selections, nesting, refusal };
}

/** The index after the string that starts at `at` (`"…"` with escapes, or a `"""…"""` block). */
function skipString(text: string, at: number): number {
  if (text.startsWith('"""', at)) {
    let index = at + 3;
    while (index < text.length) {
      if (text.startsWith('\\"""', index)) index += 4;
      else if (text.startsWith('"""', index)) return index + 3;
      else index += 1;
    }
    return index;
  }
  let index = at + 1;
  while (index < text.length) {
    const code = text.charCodeAt(index);
    if (code === Char.Backslash) index += 2;
    else if (code === Char.Quote || code === Char.NewLine || code === Char.Return) return index + 1;
    else index += 1;
  }
  return index;
}
