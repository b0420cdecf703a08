import { postgresAvailable, redisAvailable } from '../support/services.js';
import { subscriptionsContract } from './subscriptions.contract.js';

subscriptionsContract('embedded');
subscriptionsContract('postgres+redis', { skip: !(postgresAvailable && redisAvailable) });
