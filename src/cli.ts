import { existsSync } from 'node:fs';
import { EX_CONFIG, EX_USAGE } from './cli/commands.js';
import { parseCommandLine } from './cli/parse.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';

/**
 * `auditgraph <command>`. The command line is decided first, so `--help` and
 * usage errors load no configuration and open nothing; each command's module is
 * imported only when it runs, so help does not wait for the whole server to load.
 */
async function main(argv: readonly string[]): Promise<number> {
  const invocation = parseCommandLine(argv);
  if (invocation.kind === 'print') {
    console.log(invocation.text);
    return 0;
  }
  if (invocation.kind === 'usage') {
    console.error(invocation.text);
    return EX_USAGE;
  }

  if (existsSync('.env')) process.loadEnvFile('.env');
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      return EX_CONFIG;
    }
    throw error;
  }

  const { options, positionals } = invocation;
  const text = (name: string) => options[name] as string | undefined;
  try {
    switch (invocation.command) {
      case 'all':
      case 'serve':
      case 'worker':
        return await (await import('./cli/run.js')).runRole(invocation.command, config);
      case 'migrate':
        return await (await import('./cli/database.js')).migrateCommand(config);
      case 'keys signing':
        return (await import('./cli/keys.js')).printSigningKey();
      case 'keys create':
        return await (
          await import('./cli/keys.js')
        ).keysCommand(
          { action: 'create', name: text('name'), scopes: text('scopes'), rateLimit: text('rate-limit') },
          config,
        );
      case 'keys list':
        return await (await import('./cli/keys.js')).keysCommand({ action: 'list' }, config);
      case 'keys revoke':
        return await (
          await import('./cli/keys.js')
        ).keysCommand({ action: 'revoke', id: positionals[0]! }, config);
      case 'verify':
        return await (
          await import('./cli/verify.js')
        ).verifyCommand(
          {
            from: text('from'),
            to: text('to'),
            publicKeyFile: text('public-key'),
            json: options['json'] === true,
          },
          config,
        );
    }
  } catch (error) {
    // node-postgres names neither the server nor the variable: say both.
    const described = (await import('./cli/connection-errors.js')).describeConnectionError(error, config);
    if (described === undefined) throw error;
    console.error(`auditgraph: ${described}`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `auditgraph: ${error.message}` : error);
    process.exit(1);
  },
);
