/**
 * A Markdown table with every column padded to its widest cell, so it reads as
 * well in a terminal as in the README it is pasted into. Columns from
 * `rightFrom` on (figures) are right-aligned, the ones before it (labels) left.
 */
export function markdownTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly string[]>,
  rightFrom = 1,
): string {
  const widths = header.map((cell, column) =>
    Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (row: readonly string[]) =>
    `| ${row.map((cell, column) => (column >= rightFrom ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((width, column) => (column >= rightFrom ? `${'-'.repeat(width + 1)}:` : `:${'-'.repeat(width + 1)}`)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}
