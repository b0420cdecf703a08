/** The query bench's options. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface Options {
  events: number;
  samples: number;
  slowSamples: number;
  warmup: number;
  keepDb: string | undefined;
  explain: boolean;
  quietTimeoutS: number;
  maxOtherCores: number;
  pgUrl: string;
  redisUrl: string;
  pgLog: string;
  out: string;
}

const HELP = `Usage: npx tsx bench/query/run.ts [options]

  --events N           events to load (default 5000000)
  --samples N          timed requests per case, after the warm-up (default 200)
  --slow-samples N     timed runs of each slow live-aggregation SQL (default 5, after 1 warm-up)
  --warmup N           untimed requests per case first (default 20)
  --keep-db NAME       use (create if missing) database NAME and keep it; loading is skipped
                       when it already holds the N events of an earlier run
  --no-explain         skip the auto_explain pass that writes bench/query/plans.txt
  --quiet-timeout S    how long to wait for bench/ingest/run.ts to finish before measuring
                       (default 2400; polled every 30 s)
  --max-other-cpu C    measure a case only when the other processes on the machine use at most C
                       cores (sampled 2 s while idle; default 0.25); a case during which they used
                       more is measured again (up to 3 times), then marked contended
  --pg-url URL         admin connection (default $TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/postgres)
  --redis-url URL      (default $REDIS_URL or redis://127.0.0.1:6379)
  --pg-log PATH        PostgreSQL's server log, read for the auto_explain plans
                       (default /var/log/postgresql/postgresql-15-main.log)
  --out PATH           results file (default bench/query/results.json)`;

/** The flags that take a whole number, and the least each accepts. */
const COUNTS: Record<
  string,
  { key: 'events' | 'samples' | 'slowSamples' | 'warmup' | 'quietTimeoutS'; min: number }
> = {
  '--events': { key: 'events', min: 1000 },
  '--samples': { key: 'samples', min: 1 },
  '--slow-samples': { key: 'slowSamples', min: 1 },
  '--warmup': { key: 'warmup', min: 0 },
  '--quiet-timeout': { key: 'quietTimeoutS', min: 0 },
};

export function parseOptions(argv: readonly string[]): Options {
  const options: Options = {
    events: 5_000_000,
    samples: 200,
    slowSamples: 5,
    warmup: 20,
    keepDb: undefined,
    explain: true,
    quietTimeoutS: 2400,
    maxOtherCores: 0.25,
    pgUrl: process.env['TEST_POSTGRES_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379',
    pgLog: '/var/log/postgresql/postgresql-15-main.log',
    out: path.join(HERE, 'results.json'),
  };
  const count = (flag: string, value: string | undefined, min: number): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < min) throw new Error(`${flag}: expected an integer ≥ ${min}`);
    return parsed;
  };
  for (let index = 0; index < argv.length; index += 1) {
    const flag = argv[index]!;
    const value = () => {
      const next = argv[++index];
      if (next === undefined) throw new Error(`${flag}: missing value`);
      return next;
    };
    const counted = COUNTS[flag];
    if (counted) {
      options[counted.key] = count(flag, value(), counted.min);
      continue;
    }
    switch (flag) {
      case '--keep-db': {
        const name = value();
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error('--keep-db: a lowercase identifier');
        options.keepDb = name;
        break;
      }
      case '--no-explain':
        options.explain = false;
        break;
      case '--max-other-cpu': {
        const cores = Number(value());
        if (!(cores >= 0)) throw new Error(`${flag}: expected a number of cores ≥ 0`);
        options.maxOtherCores = cores;
        break;
      }
      case '--pg-url':
        options.pgUrl = value();
        break;
      case '--redis-url':
        options.redisUrl = value();
        break;
      case '--pg-log':
        options.pgLog = value();
        break;
      case '--out':
        options.out = path.resolve(value());
        break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${flag}\n\n${HELP}`);
    }
  }
  return options;
}
