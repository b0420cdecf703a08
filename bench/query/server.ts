/** `auditgraph serve` and `migrate` as the query bench runs them, with only the environment it gives them. */
import { spawn } from 'node:child_process';
import os from 'node:os';
// Services start with the Node flags users' launches pass (the bin's shebang, `npm start`, the Dockerfile).
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { BIN, ROOT, spawnChild, stopChild, waitForHttp, type Child } from '../support/processes.js';

/** Only what the service needs: nothing inherited from this shell changes its behaviour. */
export function baseEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], HOME: process.env['HOME'] ?? os.tmpdir() };
}

/** Runs a command to its end, its output on this terminal; fails unless it exits 0. */
export function runToEnd(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0
        ? resolve()
        : reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });
}

/** `auditgraph serve`, its stderr echoed as `[serve] …`, once it answers /health/ready. */
export async function startServer(env: NodeJS.ProcessEnv, port: number): Promise<Child> {
  const child = spawnChild('serve', process.execPath, [...NODE_FLAGS, BIN, 'serve'], {
    env,
    onStderr: (text) => process.stderr.write(`[serve] ${text}`),
  });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/health/ready`, { child, intervalMs: 200 });
  } catch (error) {
    child.proc.kill('SIGKILL');
    throw error;
  }
  return child;
}

export const stopServer = (child: Child): Promise<void> => stopChild(child);
