/**
 * What a bench needs around auditgraph's processes, as bench/live and
 * bench/ingest do it: free ports, a fresh PostgreSQL database and Redis
 * stream, processes started with the users' Node flags and stopped (SIGTERM,
 * then SIGKILL) by one cleanup list, and CPU readings from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/auditgraph.mjs');

/** Steps run in reverse order by {@link runCleanups}, at the end or on Ctrl-C. */
export function createCleanups() {
  const steps: Array<() => Promise<void> | void> = [];
  const run = async () => {
    for (const step of steps.splice(0).reverse()) await Promise.resolve(step()).catch(() => undefined);
  };
  process.on('SIGINT', () => void run().then(() => process.exit(130)));
  return { push: (step: () => Promise<void> | void) => steps.push(step), run };
}
export type Cleanups = ReturnType<typeof createCleanups>;

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A new database and stream name, both removed by `cleanups`. */
export async function freshBackends(
  cleanups: Cleanups,
  options: { pgUrl: string; redisUrl: string; label: string },
): Promise<{ databaseUrl: string; stream: string }> {
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
  const dbName = `ag_bench_${options.label}_${runId}`;
  const admin = new pg.Client({ connectionString: options.pgUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  cleanups.push(async () => {
    const client = new pg.Client({ connectionString: options.pgUrl });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await client.end();
  });
  const url = new URL(options.pgUrl);
  url.pathname = `/${dbName}`;
  const stream = `ag-bench-${options.label}:${runId}`;
  cleanups.push(async () => {
    const redis = new Redis(options.redisUrl);
    await redis.del(stream, `${stream}:dead`);
    redis.disconnect();
  });
  return { databaseUrl: url.toString(), stream };
}

/** Starts `node <args>` in the repository; its output is kept and printed if it fails. */
export function startProcess(
  cleanups: Cleanups,
  command: string[],
  env: Record<string, string>,
  name: string,
  options: { ipc?: boolean; cwd?: string } = {},
): ChildProcess {
  // e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the servers.
  const nodeArgs = process.env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, ...command], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') {
      console.error(`${name} exited (${code ?? signal}):\n${output.slice(-4000)}`);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  cleanups.push(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(force);
  });
  return child;
}

export async function waitForHttp(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready`);
    await sleep(200);
  }
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The p-th percentile (0-100) of ascending values, nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
