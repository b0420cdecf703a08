import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Anything that could carry a secret is redacted by path,
 * so a careless `logger.info({ headers })` cannot leak a key.
 */
export function createLogger(options: { level: string; name?: string }): Logger {
  return pino({
    name: options.name ?? 'auditgraph',
    level: options.level,
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
  });
}
