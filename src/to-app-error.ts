import { AppError, serviceUnavailable } from './errors.js';
import { isDatabaseUnavailable } from './failure-class.js';

/**
 * The error family member a failure is for a client: AppErrors as they are, an
 * unreachable database as SERVICE_UNAVAILABLE (retry later), anything else as
 * INTERNAL with a generic message. REST and GraphQL both map through here.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isDatabaseUnavailable(error))
    return serviceUnavailable('The database is unavailable; retry later.', 5, error);
  return new AppError('INTERNAL', 'Internal server error.', { cause: error });
}
