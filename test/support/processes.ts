import type { ChildProcess } from 'node:child_process';
import { NODE_FLAGS } from '../../bin/node-flags.mjs';
import { BIN, spawnChild, waitForHttp, type Child } from '../../bench/support/processes.js';

export interface AuditgraphProcess {
  child: ChildProcess;
  /** The shared record of the process (bench/support/processes.ts), which the waits read. */
  handle: Child;
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
  const args = [...NODE_FLAGS, BIN, ...(typeof command === 'string' ? [command] : command)];
  const handle = spawnChild('auditgraph', process.execPath, args, {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', LOG_LEVEL: 'warn', ...env },
  });
  return {
    child: handle.proc,
    handle,
    output: () => handle.output,
    stdout: () => handle.stdout,
    exited: handle.exited,
    kill: (signal) => handle.proc.kill(signal),
  };
}

/** Waits until `url` answers 200, or fails with what the process printed. */
export async function waitUntilReady(
  url: string,
  proc: AuditgraphProcess,
  timeoutMs = 30_000,
): Promise<void> {
  await waitForHttp(url, { child: proc.handle, timeoutMs });
}
