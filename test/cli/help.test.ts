import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnAuditgraph } from '../support/processes.js';

/**
 * Each command with the options its help must name. Written out here rather
 * than read from src/cli/commands.ts, so the test notices an option dropped there.
 */
const COMMANDS: ReadonlyArray<readonly [command: string, usage: string, options: readonly string[]]> = [
  ['all', 'auditgraph all', []],
  ['serve', 'auditgraph serve', []],
  ['worker', 'auditgraph worker', []],
  ['migrate', 'auditgraph migrate', []],
  ['keys', 'auditgraph keys <create|list|revoke|signing>', ['create', 'list', 'revoke', 'signing']],
  ['keys create', 'auditgraph keys create', ['--name NAME', '--scopes SCOPES', '--rate-limit N']],
  ['keys list', 'auditgraph keys list', []],
  ['keys revoke', 'auditgraph keys revoke ID', []],
  ['keys signing', 'auditgraph keys signing', []],
  ['verify', 'auditgraph verify', ['--from SEQ', '--to SEQ', '--public-key FILE', '--json']],
  ['help', 'auditgraph help [COMMAND]', []],
];

describe('auditgraph <command> --help', () => {
  let dataDir: string;
  /**
   * Had the command run, it would have failed: loading the configuration on the
   * port, connecting on the database URL, and an embedded command on the data folder.
   */
  let env: Record<string, string>;
  beforeAll(async () => {
    const parent = await mkdtemp(path.join(os.tmpdir(), 'ag-cli-help-'));
    dataDir = path.join(parent, 'data');
    env = {
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none',
      PRODUCER_PORT: 'notaport',
      AUDITGRAPH_DATA_DIR: dataDir,
    };
  });
  afterAll(async () => {
    await rm(path.dirname(dataDir), { recursive: true, force: true });
  });

  const run = async (args: readonly string[]) => {
    const proc = spawnAuditgraph(args, env);
    const code = await proc.exited;
    return { code, stdout: proc.stdout(), output: proc.output() };
  };

  for (const [command, usage, options] of COMMANDS) {
    it(`'${command} --help' prints its usage and options and runs nothing`, async () => {
      const result = await run([...command.split(' '), '--help']);
      expect(result.code, result.output).toBe(0);
      expect(result.stdout).toContain(`Usage: ${usage}`);
      for (const option of options) expect(result.stdout).toContain(option);
      expect(result.stdout).toContain('-h, --help');
      expect(result.output).not.toMatch(/Invalid configuration|ECONNREFUSED|Cannot reach/);
      expect(existsSync(dataDir)).toBe(false);
    });
  }

  it("answers -h and 'help COMMAND' as --help", async () => {
    const short = await run(['migrate', '-h']);
    const spelled = await run(['help', 'keys', 'create']);
    expect(short.code, short.output).toBe(0);
    expect(short.stdout).toContain('Usage: auditgraph migrate');
    expect(spelled.code, spelled.output).toBe(0);
    expect(spelled.stdout).toContain('--scopes SCOPES');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('lists every command in the overview of --help and help', async () => {
    for (const args of [['--help'], ['help'], ['-h']]) {
      const result = await run(args);
      expect(result.code, result.output).toBe(0);
      for (const [command] of COMMANDS) expect(result.stdout).toContain(`  ${command}`);
    }
  });

  it('refuses an unknown option with exit 64, naming it, and the usage of that command', async () => {
    const verify = await run(['verify', '--form', '1']);
    expect(verify.code).toBe(64);
    expect(verify.output).toContain("Unknown option '--form'");
    expect(verify.output).toContain('Usage: auditgraph verify [--from SEQ]');
    const create = await run(['keys', 'create', '--scope', 'read']);
    expect(create.code).toBe(64);
    expect(create.output).toContain("Unknown option '--scope'");
    expect(create.output).toContain('Usage: auditgraph keys create');
    const serve = await run(['serve', '--port', '80']);
    expect(serve.code).toBe(64);
    expect(serve.output).toContain("Unknown option '--port'");
  });

  it('refuses an unknown command or keys action, a stray or a missing argument, with exit 64', async () => {
    const cases: ReadonlyArray<readonly [string[], string]> = [
      [['serv'], "unknown command 'serv'"],
      [['keys', 'delete'], "unknown keys action 'delete'"],
      [['keys'], 'keys needs an action'],
      [['migrate', 'now'], "unexpected argument 'now'"],
      [['keys', 'revoke'], 'missing ID'],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      expect(result.code, `${args.join(' ')}: ${result.output}`).toBe(64);
      expect(result.output).toContain(message);
      expect(result.output).toContain('Usage: auditgraph');
    }
    expect(existsSync(dataDir)).toBe(false);
  });

  it('prints the version', async () => {
    const result = await run(['--version']);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
