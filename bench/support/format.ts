/** How benches print their figures: whole numbers with separators, ratios as percentages. */

/** 12345.6 → "12,346". */
export const fmtInt = (value: number): string => Math.round(value).toLocaleString('en-US');

/** 0.5123 → "51.2%". */
export const pct = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;

/** Each line of `text` moved right by `spaces`. */
export const indent = (text: string, spaces: number): string =>
  text
    .split('\n')
    .map((line) => ' '.repeat(spaces) + line)
    .join('\n');
