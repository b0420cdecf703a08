import { open, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../config/index.js';

/** Directories locked by this process: a second opener here would see its own pid in the file. */
const lockedHere = new Set<string>();

/**
 * Takes `<dir>/lock` for this process, so two processes (a second `npm start` on the same data
 * folder, say) never append to one queue. The file names the holder's pid and the boot it ran
 * in: a lock left by a process that died, or by any process before a reboot, is taken over.
 * @throws ConfigError when a live process holds it.
 */
export async function lockDirectory(dir: string): Promise<{ release(): Promise<void> }> {
  const file = path.join(dir, 'lock');
  if (lockedHere.has(file)) throw inUse(dir, process.pid);
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
      lockedHere.add(file);
      return {
        async release() {
          lockedHere.delete(file);
          await rm(file, { force: true });
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw error;
      const [pidText, heldBoot] = (await readFile(file, 'utf8').catch(() => '')).trim().split(' ');
      const pid = Number(pidText);
      const live =
        Number.isInteger(pid) && pid > 0 && pid !== process.pid && heldBoot === boot && isAlive(pid);
      if (live) throw inUse(dir, pid);
      await rm(file, { force: true });
    }
  }
}

function inUse(dir: string, pid: number): ConfigError {
  return new ConfigError([
    `AUDITGRAPH_DATA_DIR: the queue in ${dir} is in use by process ${pid}; stop it first ` +
      `(if no auditgraph runs as that process, delete ${path.join(dir, 'lock')})`,
  ]);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function bootId(): Promise<string> {
  // Linux; elsewhere every lock of a dead pid is still recognised as stale.
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '-')).trim() || '-';
}
