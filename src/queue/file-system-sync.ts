import { execFile } from 'node:child_process';
import { open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Makes every file under `dir` durable: the barrier of the on-disk queue's acknowledgements in
 * front of PGlite, whose own fsync does nothing. One `sync -f` (syncfs(2) of the file system
 * holding `dir`, coreutils) where it exists; else each file under `dir` is fsynced in turn.
 * @throws when a file cannot be flushed: the acknowledgements then wait for the next round.
 */
export async function syncFilesUnder(dir: string): Promise<void> {
  try {
    await run('sync', ['-f', dir]);
    return;
  } catch {
    // No coreutils `sync` with -f (macOS, busybox): one file at a time.
  }
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const handle = await open(path.join(entry.parentPath ?? entry.path, entry.name), 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
