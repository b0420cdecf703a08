/**
 * What each command accepts, in one table: the parser (parse.ts) and the help
 * (help.ts) both read it, so a command's help cannot list an option it does not
 * take, nor take one its help does not list.
 */

export const EX_USAGE = 64;
/** A server holds the embedded data folder: retry once it stopped, or go through it. */
export const EX_TEMPFAIL = 75;
export const EX_CONFIG = 78;

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** The placeholder of a string option's value, e.g. SEQ in `--from SEQ`. */
  value?: string;
  description: string;
}

export interface CommandSpec {
  /** The usage line after `auditgraph `, e.g. `verify [--from SEQ] [--json]`. */
  usage: string;
  /** One line for the overview. */
  summary: string;
  /** What it does, in a few lines, for its own help. */
  details: string;
  options: Record<string, OptionSpec>;
  /** Positional arguments, in order; each is required. */
  positionals: readonly string[];
  /** The variables that matter most to this command; the rest are in .env.template. */
  environment: readonly string[];
  /** What its exit status means, beyond 0 for success and 64 for bad usage. */
  exitStatus?: string;
}

const DATABASE =
  'DATABASE_URL (or DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD)';
const REDIS = 'REDIS_URL (or REDIS_HOST and REDIS_PORT)';
const HELD_STATUS =
  '75 when a running server holds the embedded data folder (manage it through the server, or stop it), ' +
  '78 for invalid configuration.';
const ROLE_STATUS =
  '78 for invalid configuration, 1 when a backend cannot be reached (the message names its variable).';

export const COMMANDS = {
  all: {
    usage: 'all',
    summary: 'API and worker in one process (the default; embedded when no DATABASE_URL/REDIS_URL)',
    details:
      'Runs the HTTP API and the worker in one process. With neither a database nor Redis configured it is\n' +
      'self-contained: embedded PGlite and an on-disk queue in AUDITGRAPH_DATA_DIR, and on the first start\n' +
      'an admin API key, printed once. Stops on SIGTERM or SIGINT after draining the queue.',
    options: {},
    positionals: [],
    environment: [
      DATABASE,
      REDIS,
      'PRODUCER_PORT',
      'QUERY_SERVICE_PORT',
      'AUDITGRAPH_DATA_DIR',
      'ADMIN_API_KEY',
    ],
    exitStatus: ROLE_STATUS,
  },
  serve: {
    usage: 'serve',
    summary: 'HTTP API only (needs Redis and PostgreSQL; run workers separately)',
    details:
      'Runs the HTTP API (REST, GraphQL, live subscriptions) without a worker: events are queued in Redis\n' +
      'for `auditgraph worker` processes to store. Migrates the database at start-up.',
    options: {},
    positionals: [],
    environment: [DATABASE, REDIS, 'PRODUCER_PORT', 'QUERY_SERVICE_PORT', 'ADMIN_API_KEY'],
    exitStatus: ROLE_STATUS,
  },
  worker: {
    usage: 'worker',
    summary: 'queue to database only (needs Redis and PostgreSQL)',
    details:
      'Moves queued events from Redis into PostgreSQL, in batches; run as many as the load needs.\n' +
      'Serves /metrics and health on METRICS_PORT. Migrates the database at start-up.',
    options: {},
    positionals: [],
    environment: [DATABASE, REDIS, 'METRICS_PORT', 'WORKER_BATCH_SIZE', 'WORKER_CONSUMER_NAME'],
    exitStatus: ROLE_STATUS,
  },
  migrate: {
    usage: 'migrate',
    summary: 'apply database migrations and exit',
    details:
      'Applies the database migrations not applied yet, under an advisory lock, and exits. Optional:\n' +
      'every role also migrates at start-up.',
    options: {},
    positionals: [],
    environment: [DATABASE, 'AUDITGRAPH_DATA_DIR'],
    exitStatus: HELD_STATUS,
  },
  keys: {
    usage: 'keys <create|list|revoke|signing>',
    summary: 'manage API keys, or make a checkpoint signing key',
    details: 'API keys are stored as salted hashes; a secret is shown once, when it is created.',
    options: {},
    positionals: [],
    environment: [DATABASE, 'AUDITGRAPH_DATA_DIR'],
    exitStatus: HELD_STATUS,
  },
  'keys create': {
    usage: 'keys create --name NAME --scopes ingest,read[,admin] [--rate-limit N]',
    summary: 'create an API key; its secret is printed once, on a line of its own',
    details:
      'Creates an API key and prints its secret once, alone on stdout (the rest goes to stderr), so\n' +
      '`auditgraph keys create … > secret` keeps only the secret.',
    options: {
      name: { type: 'string', value: 'NAME', description: 'what the key is for, e.g. the service using it' },
      scopes: {
        type: 'string',
        value: 'SCOPES',
        description: 'comma-separated: ingest (send events), read (query them), admin (manage keys)',
      },
      'rate-limit': {
        type: 'string',
        value: 'N',
        description: 'requests a minute for this key (default: RATE_LIMIT_PER_MINUTE)',
      },
    },
    positionals: [],
    environment: [DATABASE, 'AUDITGRAPH_DATA_DIR'],
    exitStatus: HELD_STATUS,
  },
  'keys list': {
    usage: 'keys list',
    summary: 'list API keys (never their secrets)',
    details: 'Prints one key a line, tab-separated: id, prefix, name, scopes, rate limit, state, last use.',
    options: {},
    positionals: [],
    environment: [DATABASE, 'AUDITGRAPH_DATA_DIR'],
    exitStatus: HELD_STATUS,
  },
  'keys revoke': {
    usage: 'keys revoke ID',
    summary: 'revoke a key',
    details:
      'Revokes the key with this id (as `keys list` prints it). Servers stop accepting it within\n' +
      'KEY_CACHE_TTL_MS.',
    options: {},
    positionals: ['ID'],
    environment: [DATABASE, 'AUDITGRAPH_DATA_DIR'],
    exitStatus: `1 when no key has this id, ${HELD_STATUS}`,
  },
  'keys signing': {
    usage: 'keys signing',
    summary: 'print a new Ed25519 checkpoint signing key (PKCS#8 PEM) for INTEGRITY_SIGNING_KEY',
    details:
      'Prints a new Ed25519 private key (PKCS#8 PEM) on stdout, for INTEGRITY_SIGNING_KEY or the file\n' +
      'INTEGRITY_SIGNING_KEY_FILE names. Touches no database. Keep it secret.',
    options: {},
    positionals: [],
    environment: [],
  },
  verify: {
    usage: 'verify [--from SEQ] [--to SEQ] [--public-key FILE] [--json]',
    summary: 'check the tamper-evident log and its signed checkpoints',
    details:
      'Recomputes the tamper-evident log and checks the signed checkpoints, reading straight from the\n' +
      'database: the same report as GET /integrity/verify. Names the first event that was modified,\n' +
      'deleted, inserted or reordered.',
    options: {
      from: {
        type: 'string',
        value: 'SEQ',
        description: 'first sequence number to check (default: the first)',
      },
      to: { type: 'string', value: 'SEQ', description: 'last sequence number to check (default: the last)' },
      'public-key': {
        type: 'string',
        value: 'FILE',
        description: 'check signatures with this public key (PEM), trusting nothing the database holds',
      },
      json: { type: 'boolean', description: 'print the whole report as JSON' },
    },
    positionals: [],
    environment: [DATABASE, 'INTEGRITY_SIGNING_KEY', 'INTEGRITY_SIGNING_KEY_FILE', 'AUDITGRAPH_DATA_DIR'],
    exitStatus:
      '1 when tampering was found, 75 when a running server holds the embedded data folder (verify through\n' +
      'it: GET /integrity/verify), 78 for a key that cannot be read or invalid configuration.',
  },
  help: {
    usage: 'help [COMMAND]',
    summary: 'this text, or a command’s own (also: auditgraph COMMAND --help)',
    details: 'Prints the list of commands, or with a command (e.g. `help keys create`) that command’s usage.',
    options: {},
    positionals: [],
    environment: [],
  },
} satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

/** The actions of `keys`, as `keys <action>` command names. */
export const KEYS_ACTIONS = ['create', 'list', 'revoke', 'signing'] as const;

export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}
