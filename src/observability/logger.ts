import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Anything that could carry a secret is redacted by path,
 * so a careless `logger.info({ headers })` cannot leak a key.
 */
/** Connection strings inside messages lose their passwords: `scheme://user:secret@` → `scheme://user:***@`. */
const redactSecretsIn = (text: string): string => text.replace(/(\w+:\/\/[^\s:/@]*:)[^\s@/]+@/g, '$1***@');

function redactedError(error: unknown) {
  const serialized = pino.stdSerializers.err(error as Error);
  if (typeof serialized.message === 'string') serialized.message = redactSecretsIn(serialized.message);
  if (typeof serialized.stack === 'string') serialized.stack = redactSecretsIn(serialized.stack);
  return serialized;
}

export function createLogger(options: {
  level: string;
  name?: string;
  pretty?: boolean;
  /** Where lines go (tests); stdout by default. */
  destination?: DestinationStream;
}): Logger {
  // In a terminal, lines a person can read; anywhere else, JSON for the log pipeline.
  const pretty =
    options.destination === undefined &&
    (options.pretty ?? (process.stdout.isTTY === true && options.level !== 'silent'));
  const settings = {
    serializers: { err: redactedError },
    name: options.name ?? 'auditgraph',
    level: options.level,
    ...(pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
          },
        }
      : {}),
    redact: {
      paths: [
        'headers["x-api-key"]',
        'headers.authorization',
        '*.headers["x-api-key"]',
        '*.headers.authorization',
        'password',
        '*.password',
        'apiKey',
        'secret',
        'databaseUrl',
        'redisUrl',
      ],
      censor: '[redacted]',
    },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
