/**
 * Offline access to Prisma's schema engine, to diff `prisma/schema.prisma` against the SQL
 * migrations in `prisma/migrations/` without `prisma migrate diff`.
 *
 * Why not the CLI: the Prisma 7 CLI runs a native `schema-engine` binary that it downloads on
 * first use, and this project's machines reach no host but the npm registry. The same engine is
 * published to npm as WebAssembly (`@prisma/schema-engine-wasm`), talking to PostgreSQL through a
 * driver adapter (`@prisma/adapter-pg`) instead of its own network stack, so we drive that.
 *
 * Contract and caveats:
 * - `@prisma/schema-engine-wasm` is an internal Prisma package ("Its API will break without prior
 *   warning"). It is pinned in package.json, and {@link createSchemaEngine} refuses to run any
 *   build but {@link PINNED_ENGINE_COMMIT}: after bumping it, re-run test/store/schema-drift.test.ts
 *   and compare its SQL with `prisma migrate diff` somewhere the CLI works before updating the pin.
 * - The engine needs a live PostgreSQL even for a diff that reads no database: constructing it runs
 *   a query on its main connection. Diffing from migrations replays them into a shadow database.
 *   Both databases are throwaway ones this module creates (`<prefix>_<random>`, and
 *   `<prefix>_<random>_s<n>` for shadows) and drops again; the admin URL is used only for
 *   `CREATE DATABASE` / `DROP DATABASE`, so no other database is ever read or written.
 * - adapter-pg 7.10's own `connectToShadowDb` runs `DROP DATABASE` while its pool still holds the
 *   connection (so the drop fails and shadows leak) and leaves its admin connection open; we
 *   create, connect and drop shadow databases ourselves instead.
 * - adapter-pg 7.10 rejects PostgreSQL's internal `"char"` type (OID 18), which the engine's
 *   catalog queries return (`pg_constraint.contype`, `confdeltype`, ...): with it, any database
 *   holding a CHECK or foreign-key constraint fails to describe. Our adapters retype those columns
 *   as `Character`, the type the engine reads them as (`Text` makes the engine panic).
 *   Only queries outside transactions are retyped; the engine describes schemas outside them.
 * - adapter-pg 7.10 runs a script by splitting it on every `;`, which breaks migrations holding a
 *   function body or a string with a semicolon. Our adapters send a migration script whole, over
 *   the simple-query protocol, the way the native engine applies it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

import { PrismaPg } from '@prisma/adapter-pg';
import {
  bindMigrationAwareSqlAdapterFactory,
  ColumnTypeEnum,
  DriverAdapterError,
  type IsolationLevel,
  type SqlDriverAdapter,
  type SqlMigrationAwareDriverAdapterFactory,
  type SqlQuery,
  type SqlResultSet,
  type Transaction,
} from '@prisma/driver-adapter-utils';
import type {
  DiffParams,
  DiffTarget,
  MigrationDirectory,
  MigrationList,
  SchemaEngine,
} from '@prisma/schema-engine-wasm/schema_engine_bg';
import pg from 'pg';

/** Git commit of prisma-engines that the pinned `@prisma/schema-engine-wasm` was built from. */
export const PINNED_ENGINE_COMMIT = '59be4fda12412a79eeb9c2ae727b6aa723593323';

/** Admin connection used when none is given: the local development server. */
export const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** The SQL Prisma prints for a diff without changes (`migrate diff --script`). */
export const EMPTY_MIGRATION_SQL = '-- This is an empty migration.\n';

/** Options of {@link createSchemaEngine}. */
export interface SchemaEngineOptions {
  /**
   * Connection string of any database on the PostgreSQL server; only `CREATE DATABASE` and
   * `DROP DATABASE` run through it, so its role needs CREATEDB. Default {@link DEFAULT_ADMIN_URL}.
   */
  adminUrl?: string;
  /** Prefix of the throwaway databases' names; lowercase letters, digits, `_`. Default `ag_drift`. */
  databasePrefix?: string;
  /** Receives each JSON log line of the engine. Default: discarded. */
  onLog?: (line: string) => void;
}

/** Input of {@link SchemaDiffEngine.diffMigrationsToSchema}. */
export interface MigrationsToSchemaInput {
  /** Prisma's layout: `<dir>/<timestamp>_<name>/migration.sql` and `<dir>/migration_lock.toml`. */
  migrationsDir: string;
  /** The Prisma schema file the migrations should produce. */
  schemaPath: string;
}

/** Result of {@link SchemaDiffEngine.diffMigrationsToSchema}. */
export interface MigrationsToSchemaDiff {
  /** True when the migrations produce exactly the schema. */
  empty: boolean;
  /** The SQL taking the migrated database to the schema; {@link EMPTY_MIGRATION_SQL} when empty. */
  sql: string;
}

/** A running schema engine with its own throwaway database; see {@link createSchemaEngine}. */
export type SchemaDiffEngine = Awaited<ReturnType<typeof createSchemaEngine>>;

type Bindings = typeof import('@prisma/schema-engine-wasm/schema_engine_bg');

const NO_FILTERS: DiffParams['filters'] = { externalTables: [], externalEnums: [] };
const PG_CHAR_OID = 18;
const PG_TEXT_OID = 25;
const DATABASE_PREFIX = /^[a-z][a-z0-9_]{0,39}$/;

/**
 * Starts a schema engine: loads the wasm module (once per process), creates a throwaway database
 * for the engine's main connection and constructs the engine on it.
 *
 * Call `dispose()` when done: it frees the engine and drops every database it created.
 *
 * @throws when PostgreSQL is unreachable or refuses `CREATE DATABASE`, when the installed engine
 *   is not the pinned build, or when the prefix is not a plain identifier.
 */
export async function createSchemaEngine(options: SchemaEngineOptions = {}) {
  const adminUrl = options.adminUrl ?? DEFAULT_ADMIN_URL;
  const prefix = options.databasePrefix ?? 'ag_drift';
  if (!DATABASE_PREFIX.test(prefix)) {
    throw new Error(`databasePrefix must match ${String(DATABASE_PREFIX)}, got ${JSON.stringify(prefix)}`);
  }
  const bindings = await loadBindings();
  const databases = createThrowawayDatabases(adminUrl);
  const mainDatabase = `${prefix}_${randomBytes(6).toString('hex')}`;
  let shadowCount = 0;

  const factory: SqlMigrationAwareDriverAdapterFactory = {
    provider: 'postgres',
    adapterName: '@prisma/adapter-pg',
    connect: () => databases.open(mainDatabase, false),
    // A fresh database per call; its adapter's dispose() drops it.
    connectToShadowDb: async () => {
      shadowCount += 1;
      const name = `${mainDatabase}_s${shadowCount}`;
      await databases.create(name);
      return databases.open(name, true);
    },
  };

  await databases.create(mainDatabase);
  let engine: SchemaEngine;
  try {
    engine = await guardPanics(() =>
      bindings.SchemaEngine.new(
        { datamodels: undefined },
        (line: string) => options.onLog?.(line),
        bindMigrationAwareSqlAdapterFactory(factory),
      ),
    );
  } catch (error) {
    await databases.dropAll();
    throw error;
  }

  let disposed = false;
  let disposal: Promise<void> | undefined;
  // One call at a time: a call's cleanup drops every shadow database, so calls must not overlap.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(() => {
      if (disposed) throw new Error('schema engine already disposed');
      return task();
    });
    queue = run.catch(() => undefined);
    return run;
  };
  const diff = (from: DiffTarget, to: DiffTarget, exitCode: boolean) =>
    guardPanics(() => engine.diff({ from, to, script: true, exitCode, filters: NO_FILTERS }));

  return {
    /** Name of the engine's own throwaway database (for diagnostics). */
    databaseName: mainDatabase,

    /**
     * The SQL script creating `schemaPath`'s tables in an empty database: what
     * `prisma migrate diff --from-empty --to-schema <schemaPath> --script` prints.
     * Reads no database.
     *
     * @throws when the schema does not validate.
     */
    diffEmptyToSchema(schemaPath: string): Promise<string> {
      return exclusive(async () => {
        const result = await diff({ tag: 'empty' }, await schemaTarget(schemaPath), false);
        return result.stdout ?? '';
      });
    },

    /**
     * Replays the migrations into a fresh shadow database and diffs the result against
     * `schemaPath`: `prisma migrate diff --from-migrations <dir> --to-schema <schemaPath> --script`.
     * The shadow database is dropped before this resolves.
     *
     * @throws when a migration fails to apply or the schema does not validate.
     */
    diffMigrationsToSchema(input: MigrationsToSchemaInput): Promise<MigrationsToSchemaDiff> {
      return exclusive(async () => {
        try {
          const from: DiffTarget = { tag: 'migrations', ...(await readMigrations(input.migrationsDir)) };
          // With exitCode set, the engine answers 2 for a non-empty diff and 0 for an empty one.
          const result = await diff(from, await schemaTarget(input.schemaPath), true);
          if (result.exitCode !== 0 && result.exitCode !== 2) {
            throw new Error(
              `schema engine diff answered exit code ${result.exitCode}: ${result.stdout ?? ''}`,
            );
          }
          return { empty: result.exitCode === 0, sql: result.stdout ?? '' };
        } finally {
          // The engine disposes each shadow adapter itself; this catches any a failure left behind.
          await databases.dropAllExcept(mainDatabase);
        }
      });
    },

    /** Frees the engine and drops every database it created, after the call in progress. Idempotent. */
    dispose(): Promise<void> {
      disposal ??= exclusive(async () => {
        disposed = true;
        try {
          engine.free();
        } finally {
          await databases.dropAll();
        }
      });
      return disposal;
    },
  };
}

// --- the wasm module ---------------------------------------------------------------------------

let bindingsPromise: Promise<Bindings> | undefined;

/** The slice of the `WebAssembly` global used here (typed locally: not every `lib` setting has it). */
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, object>) => { exports: Record<string, unknown> };
}

/**
 * Instantiates the engine's wasm by hand. The package's entry point does
 * `import * as wasm from "./schema_engine_bg.wasm"`, which Node only runs with
 * `--experimental-wasm-modules`; the glue module `schema_engine_bg.js` instead takes the instance's
 * exports through `__wbg_set_wasm`. The glue keeps that instance in module state, so one instance
 * per process is all there can be: hence the cached promise.
 */
function loadBindings(): Promise<Bindings> {
  bindingsPromise ??= (async () => {
    const bindings: Bindings = await import('@prisma/schema-engine-wasm/schema_engine_bg');
    const gluePath = createRequire(import.meta.url).resolve('@prisma/schema-engine-wasm/schema_engine_bg');
    const bytes = await readFile(path.join(path.dirname(gluePath), 'schema_engine_bg.wasm'));
    const wasm = Reflect.get(globalThis, 'WebAssembly') as WebAssemblyApi;
    const module = new wasm.Module(bytes);
    const instance = new wasm.Instance(module, { './schema_engine_bg.js': bindings });
    installPanicRegistry();
    bindings.__wbg_set_wasm(instance.exports);
    const start = instance.exports['__wbindgen_start'];
    if (typeof start !== 'function') throw new Error('schema engine wasm exports no __wbindgen_start');
    start();
    const commit = bindings.version();
    if (commit !== PINNED_ENGINE_COMMIT) {
      throw new Error(
        `@prisma/schema-engine-wasm is build ${commit}, but test/support/schema-engine.ts was verified ` +
          `against ${PINNED_ENGINE_COMMIT}; its API is internal, so re-verify before updating the pin.`,
      );
    }
    return bindings;
  })();
  // A failed load may be retried (e.g. after fixing the install), not cached.
  bindingsPromise.catch(() => (bindingsPromise = undefined));
  return bindingsPromise;
}

const panicListeners = new Set<(error: Error) => void>();
let panicMessage: string | undefined;

/**
 * The glue reports a Rust panic by calling `globalThis.PRISMA_WASM_PANIC_REGISTRY.set_message`
 * (and throws a TypeError when it is missing), then traps from inside a microtask, so the pending
 * engine call would never settle. We record the message and reject every call in flight with it.
 * The trap still surfaces as an uncaught exception, and the wasm instance is unusable afterwards.
 */
function installPanicRegistry(): void {
  if (Reflect.get(globalThis, 'PRISMA_WASM_PANIC_REGISTRY') !== undefined) return;
  Reflect.set(globalThis, 'PRISMA_WASM_PANIC_REGISTRY', {
    set_message(message: string) {
      panicMessage = message;
      const error = new Error(`Prisma schema engine panicked: ${message}`);
      for (const reject of panicListeners) reject(error);
    },
  });
}

async function guardPanics<T>(call: () => Promise<T>): Promise<T> {
  if (panicMessage !== undefined) {
    throw new Error(`Prisma schema engine is unusable after a panic: ${panicMessage}`);
  }
  let reject: ((error: Error) => void) | undefined;
  const panicked = new Promise<never>((_, rejectPromise) => {
    reject = rejectPromise;
  });
  const listener = (error: Error) => reject?.(error);
  panicListeners.add(listener);
  try {
    return await Promise.race([call(), panicked]);
  } finally {
    panicListeners.delete(listener);
  }
}

// --- engine inputs -----------------------------------------------------------------------------

async function schemaTarget(schemaPath: string): Promise<DiffTarget> {
  const absolute = path.resolve(schemaPath);
  return { tag: 'schemaDatamodel', files: [{ path: absolute, content: await readFile(absolute, 'utf8') }] };
}

/** Reads a migrations directory the way the Prisma CLI does (`migrate diff --from-migrations`). */
async function readMigrations(migrationsDir: string): Promise<MigrationList> {
  const baseDir = path.resolve(migrationsDir);
  const lockfilePath = 'migration_lock.toml';
  const lockfile = await readFile(path.join(baseDir, lockfilePath), 'utf8').catch(() => null);
  const entries = await readdir(baseDir, { withFileTypes: true });
  const migrationDirectories: MigrationDirectory[] = [];
  for (const entry of entries.filter((e) => e.isDirectory())) {
    const file = 'migration.sql';
    const content = await readFile(path.join(baseDir, entry.name, file), 'utf8').then(
      (value) => ({ tag: 'ok' as const, value }),
      (error: unknown) => ({
        tag: 'error' as const,
        value: error instanceof Error ? error.message : String(error),
      }),
    );
    migrationDirectories.push({ path: entry.name, migrationFile: { path: file, content } });
  }
  migrationDirectories.sort((a, b) => a.path.localeCompare(b.path));
  return {
    baseDir,
    lockfile: { path: lockfilePath, content: lockfile },
    shadowDbInitScript: '',
    migrationDirectories,
  };
}

// --- throwaway databases and their adapters ----------------------------------------------------

/** Column indexes of `"char"` columns seen by the pool queries of the current `queryRaw`. */
const charColumns = new AsyncLocalStorage<number[]>();

function createThrowawayDatabases(adminUrl: string) {
  /** Databases we created and not yet dropped, with the pools connected to them. */
  const owned = new Map<string, Set<pg.Pool>>();
  const ended = new WeakMap<pg.Pool, Promise<void>>();

  const admin = async (sql: string): Promise<void> => {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };

  const endPool = (pool: pg.Pool): Promise<void> => {
    const end = ended.get(pool) ?? pool.end();
    ended.set(pool, end);
    return end;
  };

  const drop = async (name: string): Promise<void> => {
    if (!owned.has(name)) return;
    await Promise.all([...(owned.get(name) ?? [])].map(endPool)).catch(() => undefined);
    // FORCE (PostgreSQL 13+) ends sessions the engine may have left behind.
    await admin(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    owned.delete(name);
  };

  const dropEach = async (names: string[]): Promise<void> => {
    const failures: unknown[] = [];
    for (const name of names) await drop(name).catch((error: unknown) => failures.push(error));
    if (failures.length > 0)
      throw new AggregateError(failures, `could not drop ${failures.length} database(s)`);
  };

  return {
    async create(name: string): Promise<void> {
      await admin(`CREATE DATABASE ${quoteIdent(name)}`);
      owned.set(name, new Set());
    },

    /** A driver adapter on `name`; disposing it closes its pool and, if asked, drops `name`. */
    async open(name: string, dropOnDispose: boolean): Promise<SqlDriverAdapter> {
      const pools = owned.get(name);
      if (!pools) throw new Error(`database ${name} was not created here`);
      const url = new URL(adminUrl);
      url.pathname = `/${name}`;
      const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
      // drop() ends these pools and then drops the database WITH (FORCE): a client still closing
      // receives the server's "terminating connection" and emits it as 'error', where no query
      // waits to take it; unheard, it ended the test run as an uncaught exception (seen once in CI).
      pool.on('error', () => undefined);
      pool.on('connect', (client) => client.on('error', () => undefined));
      retypeCharColumns(pool);
      pools.add(pool);
      const inner = await new PrismaPg(pool).connect();
      return {
        provider: inner.provider,
        adapterName: inner.adapterName,
        async queryRaw(query: SqlQuery): Promise<SqlResultSet> {
          const seen: number[] = [];
          const result = await charColumns.run(seen, () => inner.queryRaw(query));
          if (seen.length === 0) return result;
          const columnTypes = [...result.columnTypes];
          for (const index of seen) columnTypes[index] = ColumnTypeEnum.Character;
          return { ...result, columnTypes };
        },
        executeRaw: (query: SqlQuery) => inner.executeRaw(query),
        executeScript: (script: string) => executeWholeScript(pool, script),
        startTransaction: (isolationLevel?: IsolationLevel): Promise<Transaction> =>
          inner.startTransaction(isolationLevel),
        getConnectionInfo: () => inner.getConnectionInfo(),
        async dispose(): Promise<void> {
          await inner.dispose(); // detaches its listener; the pool is ours to end
          await (dropOnDispose ? drop(name) : endPool(pool));
        },
      };
    },

    dropAll: () => dropEach([...owned.keys()]),
    dropAllExcept: (keep: string) => dropEach([...owned.keys()].filter((name) => name !== keep)),
  };
}

/**
 * Makes `pool.query` report `"char"` columns as text, so adapter-pg accepts them, and records
 * their indexes for the `queryRaw` in progress, which retypes them as `Character`.
 */
function retypeCharColumns(pool: pg.Pool): void {
  const original = pool.query.bind(pool) as (...args: unknown[]) => unknown;
  const query = (...args: unknown[]): unknown => {
    const result = original(...args);
    return isPromiseLike(result) ? Promise.resolve(result).then(retypeCharFields) : result;
  };
  Object.defineProperty(pool, 'query', { value: query, configurable: true, writable: true });
}

function retypeCharFields<T>(result: T): T {
  const seen = charColumns.getStore();
  for (const single of Array.isArray(result) ? (result as unknown[]) : [result]) {
    if (!isQueryResult(single)) continue;
    single.fields.forEach((field, index) => {
      if (field.dataTypeID !== PG_CHAR_OID) return;
      field.dataTypeID = PG_TEXT_OID;
      seen?.push(index);
    });
  }
  return result;
}

/** Runs a migration script in one round trip, as the native engine does, keeping pg's error. */
async function executeWholeScript(pool: pg.Pool, script: string): Promise<void> {
  try {
    await pool.query(script);
  } catch (error) {
    if (error instanceof pg.DatabaseError) {
      throw new DriverAdapterError({
        kind: 'postgres',
        code: error.code ?? 'unknown',
        severity: error.severity ?? 'ERROR',
        message: error.message,
        detail: error.detail,
        column: error.column,
        hint: error.hint,
      });
    }
    throw error;
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'then') === 'function';
}

function isQueryResult(value: unknown): value is pg.QueryResult {
  return typeof value === 'object' && value !== null && Array.isArray(Reflect.get(value, 'fields'));
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
