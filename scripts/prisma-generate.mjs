#!/usr/bin/env node
// Regenerates the committed Prisma client (src/store/generated) from prisma/schema.prisma.
// `prisma generate` checks only that PRISMA_SCHEMA_ENGINE_BINARY names a file (the engine
// cannot be downloaded here and generate does not run it), so any existing file will do.
// With --check it fails when the committed client is not what the schema generates.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import process from 'node:process';

const check = process.argv.includes('--check');
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
};
const generated = 'src/store/generated';
let backup;
if (check) {
  backup = mkdtempSync(path.join(tmpdir(), 'ag-prisma-'));
  cpSync(generated, backup, { recursive: true });
}
execFileSync('npx', ['prisma', 'generate'], { stdio: check ? 'pipe' : 'inherit', env });
if (check) {
  try {
    execFileSync('git', ['diff', '--exit-code', '--stat', '--', generated], { stdio: 'inherit' });
    const untracked = execFileSync('git', [
      'ls-files',
      '--others',
      '--exclude-standard',
      '--',
      generated,
    ]).toString();
    if (untracked.trim()) throw new Error(`untracked generated files:\n${untracked}`);
    console.log('Prisma client is current.');
  } catch (error) {
    console.error(
      'The committed Prisma client is stale: run `npm run prisma:generate` and commit.',
      error.message ?? '',
    );
    rmSync(generated, { recursive: true, force: true });
    cpSync(backup, generated, { recursive: true });
    process.exit(1);
  } finally {
    rmSync(backup, { recursive: true, force: true });
  }
}
