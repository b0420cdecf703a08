import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NODE_FLAGS } from '../../bin/node-flags.mjs';

const ENTRY = fileURLToPath(new URL('../../bin/auditgraph.mjs', import.meta.url));

export interface AuditgraphProcess {
  child: ChildProcess;
  /** What the process wrote to stdout and stderr, for a failing test's message. */
  output(): string;
  /** What it wrote to stdout alone. */
  stdout(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  kill(signal: NodeJS.Signals): void;
}

/** Runs `auditgraph <command…>` as its own process, the way an operator would. */
export function spawnAuditgraph(
  command: string | readonly string[],
  env: Record<string, string>,
): AuditgraphProcess {
  const args = [...NODE_FLAGS, ENTRY, ...(typeof command === 'string' ? [command] : command)];
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let stdout = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, output: () => output, stdout: () => stdout, exited, kill: (signal) => child.kill(signal) };
}

/** Waits until `url` answers 200, or fails with what the process printed. */
export async function waitUntilReady(
  url: string,
  proc: AuditgraphProcess,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitedEarly: number | string | undefined;
  void proc.exited.then((code) => (exitedEarly = code));
  for (;;) {
    if (exitedEarly !== undefined)
      throw new Error(`process exited (${exitedEarly}) before ready:\n${proc.output()}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`not ready after ${timeoutMs} ms:\n${proc.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
