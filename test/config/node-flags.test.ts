import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../bin/node-flags.mjs';

const read = (file: string) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');

/** The flags between `node` and the entry script in a command line, e.g. `node --a --b bin/auditgraph.mjs all`. */
function flagsBefore(entry: string, words: readonly string[]): string[] {
  const node = words.indexOf('node');
  const script = words.indexOf(entry);
  if (node < 0 || script < node) throw new Error(`no "node … ${entry}" in: ${words.join(' ')}`);
  return words.slice(node + 1, script);
}

describe('every launch of auditgraph runs Node with the same flags (bin/node-flags.mjs)', () => {
  it("the bin's shebang, so `npx auditgraph` and running the file directly get them", () => {
    const shebang = read('bin/auditgraph.mjs').split('\n')[0]!;
    expect(shebang.startsWith('#!/usr/bin/env -S node')).toBe(true);
    expect(shebang.split(/\s+/).slice(3)).toEqual(NODE_FLAGS);
  });

  it('`npm start`', () => {
    const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(flagsBefore('bin/auditgraph.mjs', scripts['start']!.split(/\s+/))).toEqual(NODE_FLAGS);
  });

  it("the container image's entry point", () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(read('Dockerfile'))?.[1];
    expect(entrypoint).toBeDefined();
    expect(flagsBefore('bin/auditgraph.mjs', JSON.parse(entrypoint!) as string[])).toEqual(NODE_FLAGS);
  });
});
