import { AppError } from '../errors.js';
import type { Logger } from '../observability/logger.js';

/**
 * The source stream graphql-ws iterates for one `eventLogged`: it yields
 * nothing (the fanout sends frames itself) and ends when graphql-ws returns it
 * (client `complete`, socket closed). A failed catch-up ends it with an error
 * the client can act on.
 */
export function liveIterator(
  subscription: { caughtUp: Promise<void>; close(): void },
  release: () => void,
  logger: Logger,
): AsyncIterableIterator<never> {
  let finish: (result: IteratorResult<never>) => void = () => undefined;
  let fail: (error: unknown) => void = () => undefined;
  const ended = new Promise<IteratorResult<never>>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  // graphql-ws awaits next() at once; this only keeps an early failure from counting as unhandled.
  ended.catch(() => undefined);
  const end = () => {
    subscription.close();
    release();
  };
  subscription.caughtUp.catch((error: unknown) => {
    logger.warn({ err: error }, 'eventLogged could not catch up from the database');
    end();
    fail(
      new AppError(
        'SERVICE_UNAVAILABLE',
        'The live feed could not read the stored events it starts from; resubscribe (with the same cursor, if any).',
        { retryAfterSeconds: 1 },
      ),
    );
  });
  const iterator: AsyncIterableIterator<never> = {
    next: () => ended,
    async return() {
      end();
      finish({ done: true, value: undefined });
      return { done: true, value: undefined };
    },
    async throw(error: unknown) {
      end();
      finish({ done: true, value: undefined });
      throw error;
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
