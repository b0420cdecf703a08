/** The subscriber process (bench/live/clients.ts), driven over IPC: one request, one answer of a named type. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, type Cleanups } from '../support/processes.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The subscriber process, driven over IPC. */
export function startClients(cleanups: Cleanups) {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'clients.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  const waiting: Array<{ type: string; resolve: (message: Record<string, unknown>) => void }> = [];
  child.on('message', (message: Record<string, unknown>) => {
    if (message['type'] === 'error') throw new Error(`clients: ${String(message['message'])}`);
    const index = waiting.findIndex((waiter) => waiter.type === message['type']);
    if (index >= 0) waiting.splice(index, 1)[0]?.resolve(message);
  });
  const request = (command: Record<string, unknown>, answer: string) =>
    new Promise<Record<string, unknown>>((resolve) => {
      waiting.push({ type: answer, resolve });
      child.send(command);
    });
  const ready = new Promise<void>((resolve) => waiting.push({ type: 'ready', resolve: () => resolve() }));
  return { child, ready, request };
}

export type Clients = ReturnType<typeof startClients>;
