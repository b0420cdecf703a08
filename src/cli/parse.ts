import { parseArgs, type ParseArgsConfig } from 'node:util';
import { COMMANDS, KEYS_ACTIONS, isCommandName, type CommandName } from './commands.js';
import { VERSION, commandHelp, overview, usageError } from './help.js';

/** The commands that do something (the rest only print help). */
export type RunnableCommand = Exclude<CommandName, 'keys' | 'help'>;

/**
 * What a command line asks for, decided before anything is loaded or opened:
 * text to print (help, the version), a usage error, or a command to run.
 */
export type Invocation =
  | { kind: 'print'; text: string }
  | { kind: 'usage'; text: string }
  | {
      kind: 'run';
      command: RunnableCommand;
      options: Readonly<Record<string, string | boolean | undefined>>;
      positionals: readonly string[];
    };

/** Reads `argv` (without node and the script). No command means `all`. */
export function parseCommandLine(argv: readonly string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === undefined) return toRun('all', parseCommand('all', []));
  if (first === '--help' || first === '-h') return { kind: 'print', text: overview() };
  if (first === '--version') return { kind: 'print', text: VERSION };
  // 'keys create' is one command name but two arguments.
  if (!isCommandName(first) || first.includes(' ')) {
    return { kind: 'usage', text: usageError(`unknown command '${first}'`) };
  }
  if (first === 'help') return helpFor(rest);
  if (first === 'keys') return parseKeys(rest);
  return toRun(first, parseCommand(first, rest));
}

function helpFor(args: readonly string[]): Invocation {
  if (args.length === 0) return { kind: 'print', text: overview() };
  if (asksForHelp(args)) return { kind: 'print', text: commandHelp('help') };
  const name = args.join(' ');
  return isCommandName(name)
    ? { kind: 'print', text: commandHelp(name) }
    : { kind: 'usage', text: usageError(`unknown command '${name}'`) };
}

function parseKeys(args: readonly string[]): Invocation {
  const [action, ...rest] = args;
  // `keys --help`, `keys -x`: options of `keys` itself, which has none but help.
  if (action === undefined || action.startsWith('-')) {
    const parsed = parseCommand('keys', args);
    if (parsed.kind !== 'parsed') return parsed;
    return { kind: 'usage', text: usageError(`keys needs an action: ${KEYS_ACTIONS.join(', ')}`, 'keys') };
  }
  if (!isKeysAction(action))
    return { kind: 'usage', text: usageError(`unknown keys action '${action}'`, 'keys') };
  const name = `keys ${action}` as const;
  return toRun(name, parseCommand(name, rest));
}

interface Parsed {
  kind: 'parsed';
  options: Readonly<Record<string, string | boolean | undefined>>;
  positionals: readonly string[];
}

function toRun(command: RunnableCommand, parsed: Invocation | Parsed): Invocation {
  return parsed.kind === 'parsed' ? { ...parsed, kind: 'run', command } : parsed;
}

function parseCommand(name: CommandName, args: readonly string[]): Invocation | Parsed {
  const spec = COMMANDS[name];
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [option, { type }] of Object.entries(spec.options)) options[option] = { type };
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (error) {
    // `--name --help` and the like: asking for help wins over a malformed line.
    if (asksForHelp(args)) return { kind: 'print', text: commandHelp(name) };
    return { kind: 'usage', text: usageError(firstSentence(error), name) };
  }
  if (parsed.values['help'] === true) return { kind: 'print', text: commandHelp(name) };
  const expected = spec.positionals;
  const extra = parsed.positionals[expected.length];
  if (extra !== undefined) return { kind: 'usage', text: usageError(`unexpected argument '${extra}'`, name) };
  const missing = expected[parsed.positionals.length];
  if (missing !== undefined) return { kind: 'usage', text: usageError(`missing ${missing}`, name) };
  // No option is declared `multiple`, so no value is an array.
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return { kind: 'parsed', options: values, positionals: parsed.positionals };
}

function isKeysAction(action: string): action is (typeof KEYS_ACTIONS)[number] {
  return (KEYS_ACTIONS as readonly string[]).includes(action);
}

/** `-h` or `--help` before any `--` (after it, they are arguments). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '-h' || arg === '--help');
}

/** parseArgs's message without its advice on `--`, e.g. "Unknown option '--form'". */
function firstSentence(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split(/\.\s/)[0]!.replace(/\.$/, '');
}
