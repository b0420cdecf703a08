import { postgresAvailable, redisAvailable } from '../support/services.js';
import { graphqlContract } from './graphql.contract.js';

graphqlContract('embedded');
graphqlContract('postgres+redis', { skip: !(postgresAvailable && redisAvailable) });
