import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/index.js';

/**
 * PGlite does not lock its folder: two processes opening one would both write
 * to it and corrupt it, and a CLI `keys create` beside a running server would
 * print a key the server never sees. The folder is held through a file of its
 * own, `auditgraph.lock`, made with O_EXCL and naming the holder's pid and boot.
 */
export const LOCK_FILE = 'auditgraph.lock';

/** Thrown when a live process holds the folder; a ConfigError, so the CLI exits 78 with its message. */
export class DataFolderInUseError extends ConfigError {
  readonly dir: string;
  readonly pid: number;
  constructor(dir: string, pid: number) {
    super([
      `AUDITGRAPH_DATA_DIR: the embedded database in ${dir} is in use by auditgraph process ${pid} ` +
        `(a running server); only one process may open it at a time. If no auditgraph runs as ` +
        `that process, delete ${path.join(dir, LOCK_FILE)}.`,
    ]);
    this.name = 'DataFolderInUseError';
    this.dir = dir;
    this.pid = pid;
  }
}

/** Folders held by this process: opening one twice here is refused too. */
const heldHere = new Set<string>();

/**
 * Takes `<dir>/auditgraph.lock` for this process until `release()`, or until the
 * process exits (the file is removed then too). A lock whose pid is dead, or was
 * written before the last reboot, is stale and taken over.
 * @throws DataFolderInUseError when a live process (this one included) holds it.
 */
export async function lockDataFolder(dir: string): Promise<{ release(): Promise<void> }> {
  const folder = path.resolve(dir);
  const file = path.join(folder, LOCK_FILE);
  if (heldHere.has(file)) throw new DataFolderInUseError(folder, process.pid);
  await mkdir(folder, { recursive: true });
  const boot = await bootId();
  for (let attempt = 0; ; attempt += 1) {
    try {
      const handle = await open(file, 'wx');
      try {
        await handle.writeFile(`${process.pid} ${boot}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw holderError(folder, file);
        throw error;
      }
      const holder = await readHolder(file);
      if (holder !== undefined && holder.boot === boot && isAlive(holder.pid)) {
        throw new DataFolderInUseError(folder, holder.pid);
      }
      await rm(file, { force: true }); // stale: its process is gone
    }
  }
  heldHere.add(file);
  // A process that exits without closing its database (process.exit, an uncaught error) lets go too.
  const onExit = () => removeIfOurs(file);
  process.once('exit', onExit);
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      process.off('exit', onExit);
      heldHere.delete(file);
      removeIfOurs(file);
    },
  };
}

/**
 * Opens a database in `dir` under its folder lock: the lock is taken first and
 * let go when the database closes (or fails to open).
 * @throws DataFolderInUseError when another live process holds the folder.
 */
export async function withDataFolderLock<Opened extends { close(): Promise<void> }>(
  dir: string,
  openIn: () => Promise<Opened>,
): Promise<Opened> {
  const lock = await lockDataFolder(dir);
  let db: Opened;
  try {
    db = await openIn();
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    ...db,
    async close() {
      try {
        await db.close();
      } finally {
        await lock.release();
      }
    },
  };
}

async function readHolder(file: string): Promise<{ pid: number; boot: string } | undefined> {
  const [pidText, boot = ''] = (await readFile(file, 'utf8').catch(() => '')).trim().split(' ');
  const pid = Number(pidText);
  return Number.isInteger(pid) && pid > 0 ? { pid, boot } : undefined;
}

/** Someone else created the file between our removal of a stale one and our second try. */
function holderError(folder: string, file: string): DataFolderInUseError {
  let pid = 0;
  try {
    pid = Number(readFileSync(file, 'utf8').split(' ')[0]) || 0;
  } catch {
    // gone again: report it held anyway, the caller may retry
  }
  return new DataFolderInUseError(folder, pid);
}

/** Removes the lock file only while it still names this process (synchronous: it runs at exit). */
function removeIfOurs(file: string): void {
  try {
    if (!existsSync(file)) return;
    if (Number(readFileSync(file, 'utf8').split(' ')[0]) === process.pid) unlinkSync(file);
  } catch {
    // already gone, or the folder was removed with it
  }
}

function isAlive(pid: number): boolean {
  // Our own pid in a file this process does not hold (see heldHere) is a past process's: a container
  // restarted on the same volume runs as the same pid again.
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function bootId(): Promise<string> {
  // Linux; elsewhere a lock of a dead pid is still recognised as stale.
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '-')).trim() || '-';
}
