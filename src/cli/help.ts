import { readFileSync } from 'node:fs';
import { COMMANDS, KEYS_ACTIONS, type CommandName, type CommandSpec } from './commands.js';

/** Read here rather than imported from src/app, so that help loads nothing but this folder. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const HELP_OPTION = { flag: '-h, --help', description: 'show this help and exit' };

/** The overview: every command with its one line. */
export function overview(): string {
  const rows = Object.entries(COMMANDS).map(([name, spec]) => {
    const head = spec.positionals.length ? `${name} ${spec.positionals.join(' ')}` : name;
    return [name === 'help' ? 'help [COMMAND]' : head, spec.summary] as const;
  });
  return `auditgraph ${VERSION}

Usage: auditgraph [COMMAND] [OPTIONS]

Commands:
${table(rows)}

Run 'auditgraph COMMAND --help' for a command's options; 'auditgraph --version' prints the version.
Configuration comes from the environment (and ./.env); see .env.template.
With embedded PGlite one process at a time opens the data folder: while a server runs on it,
'keys', 'migrate' and 'verify' refuse (exit 75); use the running server's admin GraphQL
operations (createApiKey, apiKeys, revokeApiKey) or stop it first.`;
}

/** A command's own help: usage, what it does, its options, the variables it reads, its exit status. */
export function commandHelp(name: CommandName): string {
  const spec: CommandSpec = COMMANDS[name];
  const options = Object.entries(spec.options).map(
    ([option, { value, description }]) => [`--${option}${value ? ` ${value}` : ''}`, description] as const,
  );
  const sections = [`Usage: auditgraph ${spec.usage}`, spec.details];
  if (name === 'keys') {
    sections.push(
      `Actions:\n${table(KEYS_ACTIONS.map((action) => [action, COMMANDS[`keys ${action}`].summary]))}`,
    );
    sections.push("Run 'auditgraph keys ACTION --help' for an action's options.");
  }
  sections.push(`Options:\n${table([...options, [HELP_OPTION.flag, HELP_OPTION.description]])}`);
  if (spec.environment.length) {
    sections.push(
      `Environment (and ./.env; every variable is in .env.template):\n${spec.environment.map((variable) => `  ${variable}`).join('\n')}`,
    );
  }
  if (spec.exitStatus) sections.push(wrap(`Exit status: 0 on success, 64 for bad usage, ${spec.exitStatus}`));
  return sections.join('\n\n');
}

/** A usage error: what was wrong, then how the command is used. */
export function usageError(problem: string, name?: CommandName): string {
  const usage =
    name === undefined
      ? overview()
      : `Usage: auditgraph ${COMMANDS[name].usage}\nRun 'auditgraph ${name} --help' for its options.`;
  return `auditgraph: ${problem}\n\n${usage}`;
}

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  const width = Math.max(...rows.map(([left]) => left.length)) + 3;
  return rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join('\n');
}

function wrap(text: string, columns = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > columns) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line].join('\n');
}
