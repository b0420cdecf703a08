import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from '../../bench/support/ports.js';

/**
 * A PostgreSQL cluster and a Redis server of the fault suite's own, in
 * temporary folders on free ports: the suite stops, kills and restarts them,
 * which it must never do to the machine's shared servers (5432, 6379) that
 * other test runs use at the same time.
 */

const run = promisify(execFile);
const PG_BIN = process.env['PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

// A port that was free a moment ago: one helper for benches and tests.
export { freePort };

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

// Last-resort cleanup when a test process ends without its afterAll (a crash,
// an uncaught error): servers it started must not outlive it.
const exitHooks = new Set<() => void>();
process.once('exit', () => {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // best effort: the process is ending
    }
  }
});

/** initdb refuses to run as root; the suite runs as root in CI, so the cluster belongs to `postgres`. */
function asClusterOwner(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

async function clusterOwner(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([run('id', ['-u', 'postgres']), run('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export interface PostgresCluster {
  port: number;
  /** A database created for the test, on this cluster. */
  databaseUrl: string;
  /** Stops the server (`pg_ctl stop -m fast`: sessions are disconnected, nothing committed is lost). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and removes its folder. */
  destroy(): Promise<void>;
  log(): Promise<string>;
}

/**
 * initdb + pg_ctl in a temporary folder. fsync is off (the suite kills
 * processes, never the machine, so the kernel keeps every write), but
 * synchronous_commit stays on: a commit PostgreSQL acknowledged is in its WAL.
 */
export async function startPostgresCluster(database = 'auditgraph'): Promise<PostgresCluster> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-fault-pg-'));
  const owner = await clusterOwner();
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const dataDir = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const port = await freePort();
  const pgCtl = (args: string[]) => {
    const [command, argv] = asClusterOwner(path.join(PG_BIN, 'pg_ctl'), args);
    return run(command, argv, { timeout: 60_000 });
  };
  const [initdb, initArgs] = asClusterOwner(path.join(PG_BIN, 'initdb'), [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '-A',
    'trust',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  await run(initdb, initArgs, { timeout: 60_000 });
  const serverOptions = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    '-c full_page_writes=off',
    '-c max_connections=60',
    '-c shared_buffers=32MB',
  ].join(' ');
  const start = async () => {
    await pgCtl(['start', '-w', '-t', '60', '-D', dataDir, '-l', logFile, '-o', serverOptions]);
  };
  const stop = async () => {
    await pgCtl(['stop', '-w', '-t', '60', '-D', dataDir, '-m', 'fast']);
  };
  const hook = () => {
    const [command, argv] = asClusterOwner(path.join(PG_BIN, 'pg_ctl'), [
      'stop',
      '-D',
      dataDir,
      '-m',
      'immediate',
    ]);
    execFileSync(command, argv, { stdio: 'ignore', timeout: 10_000 });
  };
  exitHooks.add(hook);
  try {
    await start();
    const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query(`CREATE DATABASE "${database}"`);
    await admin.end();
  } catch (error) {
    await stop().catch(() => undefined);
    exitHooks.delete(hook);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    databaseUrl: `postgresql://postgres@127.0.0.1:${port}/${database}`,
    start,
    stop,
    async destroy() {
      await pgCtl(['stop', '-w', '-t', '30', '-D', dataDir, '-m', 'immediate']).catch(() => undefined);
      exitHooks.delete(hook);
      await rm(dir, { recursive: true, force: true });
    },
    log: () => readFile(logFile, 'utf8').catch(() => ''),
  };
}

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL: a crash, not a shutdown; only what the append-only file holds survives. */
  kill(): Promise<void>;
  /** Starts it again on the same port and folder; it reloads the append-only file. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * redis-server with append-only persistence, fsync on every write by default
 * (the compose file's setting), no RDB snapshots and no eviction.
 */
export async function startRedisServer(
  options: { appendfsync?: 'always' | 'everysec' } = {},
): Promise<RedisServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ag-fault-redis-'));
  const port = await freePort();
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'always',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
  ];
  let child: ChildProcess | undefined;
  const hook = () => child?.kill('SIGKILL');
  exitHooks.add(hook);

  const start = async () => {
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          proc.stdout?.off('data', onData);
          proc.stdout?.resume();
          resolve();
        }
      };
      proc.stdout?.on('data', onData);
      proc.stderr?.resume();
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}):\n${output}`)));
    });
  };
  const kill = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    start,
    async destroy() {
      await kill();
      exitHooks.delete(hook);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
