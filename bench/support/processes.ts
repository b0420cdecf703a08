/**
 * Child processes for benches and tests: started with their output kept (and
 * printed when they fail), stopped with SIGTERM then SIGKILL, waited on until
 * they answer over HTTP or print a line. Servers are started as users start
 * them: `node` with the bin's flags, on the repository's bin/auditgraph.mjs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/auditgraph.mjs');

export interface Child {
  name: string;
  proc: ChildProcess;
  /** What it wrote to stdout and stderr (the last `keepChars` of it). */
  output: string;
  /** What it wrote to stdout alone. */
  stdout: string;
  /** Resolves with the exit code, or the signal's name, or the spawn error's message. */
  exited: Promise<number | string>;
  /** Undefined while it runs. */
  exitCode: number | string | undefined;
}

export interface SpawnOptions {
  /** The whole environment: nothing is inherited. */
  env: NodeJS.ProcessEnv;
  cwd?: string | undefined;
  /** An IPC channel as its fourth stdio (`child.proc.send`). */
  ipc?: boolean;
  /** How much output to keep; all of it when not set. */
  keepChars?: number;
  /** Each chunk of stderr as it comes, e.g. to echo it. */
  onStderr?: (text: string) => void;
}

/** Starts `file args` in the repository (or `cwd`), keeping its output. */
export function spawnChild(
  name: string,
  file: string,
  args: readonly string[],
  options: SpawnOptions,
): Child {
  const proc = spawn(file, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env,
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  const child: Child = {
    name,
    proc,
    output: '',
    stdout: '',
    exited: Promise.resolve(0),
    exitCode: undefined,
  };
  const keep = (text: string) => {
    child.output += text;
    if (options.keepChars !== undefined && child.output.length > options.keepChars)
      child.output = child.output.slice(-options.keepChars);
  };
  proc.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    child.stdout += text;
    if (options.keepChars !== undefined && child.stdout.length > options.keepChars)
      child.stdout = child.stdout.slice(-options.keepChars);
    keep(text);
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    keep(text);
    options.onStderr?.(text);
  });
  child.exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      child.exitCode = code ?? signal ?? 'unknown';
      resolve(child.exitCode);
    });
    proc.once('error', (error) => {
      child.output += `\n${error.message}`;
      child.exitCode = error.message;
      resolve(error.message);
    });
  });
  return child;
}

/** SIGTERM (a server stops cleanly, and writes its --cpu-prof), then SIGKILL after `timeoutMs`. */
export async function stopChild(
  child: Child,
  timeoutMs = 15_000,
  onKill?: (child: Child) => void,
): Promise<void> {
  if (child.exitCode !== undefined) return;
  child.proc.kill('SIGTERM');
  const stopped = await Promise.race([child.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
  if (stopped) return;
  onKill?.(child);
  child.proc.kill('SIGKILL');
  await child.exited;
}

export function childFailed(child: Child, what: string): Error {
  return new Error(
    `${child.name} ${what} (exit ${child.exitCode}). Its last output:\n${child.output.slice(-4000)}`,
  );
}

/**
 * Waits until `url` answers 200; with `child`, fails at once (with its output)
 * if it exits first, and names it when time runs out.
 */
export async function waitForHttp(
  url: string,
  options: { child?: Child; timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const { child, timeoutMs = 60_000, intervalMs = 100 } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child?.exitCode !== undefined) throw childFailed(child, 'exited before it was ready');
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      if (child) throw childFailed(child, `was not ready at ${url} within ${timeoutMs} ms`);
      throw new Error(`${url} not ready`);
    }
    await sleep(intervalMs);
  }
}

/** Waits until the child has printed `pattern`. */
export async function waitForOutput(child: Child, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(child.output)) {
    if (child.exitCode !== undefined) throw childFailed(child, 'exited before it started');
    if (Date.now() > deadline) throw childFailed(child, `did not print ${pattern} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Steps run in reverse order by `run()`, at the end or on Ctrl-C. */
export function createCleanups() {
  const steps: Array<() => Promise<void> | void> = [];
  const run = async () => {
    for (const step of steps.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  process.on('SIGINT', () => void run().then(() => process.exit(130)));
  return { push: (step: () => Promise<void> | void) => steps.push(step), run };
}
export type Cleanups = ReturnType<typeof createCleanups>;

/**
 * Starts `node <command>` in the repository with only PATH, HOME and `env`,
 * stopped by `cleanups`; its output is printed if it exits on its own with a
 * failure. `BENCH_NODE_ARGS` (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")
 * profiles the servers.
 */
export function startProcess(
  cleanups: Cleanups,
  command: string[],
  env: Record<string, string>,
  name: string,
  options: { ipc?: boolean; cwd?: string | undefined } = {},
): ChildProcess {
  const nodeArgs = process.env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawnChild(name, process.execPath, [...nodeArgs, ...command], {
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    cwd: options.cwd,
    ipc: options.ipc ?? false,
  });
  child.proc.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
      console.error(`${name} exited (${code ?? signal}):\n${child.output.slice(-4000)}`);
    }
  });
  cleanups.push(() => stopChild(child));
  return child.proc;
}
