import { postgresAvailable, redisAvailable } from '../support/services.js';
import { wsHardeningContract } from './ws-hardening.contract.js';

wsHardeningContract('embedded');
wsHardeningContract('postgres+redis', { skip: !(postgresAvailable && redisAvailable) });
