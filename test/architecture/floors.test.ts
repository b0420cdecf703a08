import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { cruise } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';
import config, { FLOORS } from '../../.dependency-cruiser.mjs';

// The floors of src/ (see .dependency-cruiser.mjs): each offending import is named with its rule.
describe('the floors of src/', () => {
  it('has no import from a lower floor to a higher one and no import circle', async () => {
    const result = await cruise(['src'], {
      ...config.options,
      ruleSet: { forbidden: config.forbidden },
      validate: true,
    });
    if (typeof result.output === 'string') throw new Error('dependency-cruiser answered text');
    const violations = result.output.summary.violations.map((violation) =>
      violation.cycle === undefined
        ? `${violation.rule.name}: ${violation.from} → ${violation.to}`
        : `${violation.rule.name}: ${violation.cycle.map((step) => step.name).join(' → ')} → ${violation.from}`,
    );
    expect(violations).toEqual([]);
    // The check saw the whole tree, not an empty or misresolved one.
    expect(result.output.summary.totalCruised).toBeGreaterThan(100);
  }, 60_000);

  it('places every folder and top-level module of src/ on a floor, and the README maps each folder', () => {
    const readme = readFileSync('README.md', 'utf8');
    const layout = readme.slice(readme.indexOf('## Layout'));
    for (const entry of readdirSync('src', { withFileTypes: true })) {
      const path = entry.isDirectory() ? `src/${entry.name}/` : `src/${entry.name}`;
      expect(
        FLOORS.some((floor) => new RegExp(floor.path).test(path)),
        `${path} is on no floor`,
      ).toBe(true);
      // `src/cli.ts` does not stand for a folder `src/cli`: the name must end there.
      if (entry.isDirectory())
        expect(layout, `README Layout names ${path}`).toMatch(new RegExp(`src/${entry.name}(?![\\w.-])`));
    }
  });

  it('keeps every module of src/ (generated code aside) to one job of at most 400 lines', () => {
    const tooLong: string[] = [];
    for (const entry of readdirSync('src', { recursive: true, withFileTypes: true })) {
      const file = path.join(entry.parentPath, entry.name);
      if (!entry.isFile() || !file.endsWith('.ts') || file.includes(`${path.sep}generated${path.sep}`))
        continue;
      const lines = readFileSync(file, 'utf8').split('\n').length - 1;
      if (lines > 400) tooLong.push(`${file}: ${lines} lines`);
    }
    expect(tooLong).toEqual([]);
  });
});
