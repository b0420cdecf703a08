import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes a bench's results as indented JSON (the committed bench/<name>/results.json), folder included. */
export function writeResults(file: string, results: unknown): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}
