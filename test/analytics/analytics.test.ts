import { openPGliteFixture, openPostgresFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';
import { analyticsContract } from './analytics.contract.js';

analyticsContract('PostgreSQL', openPostgresFixture, { skip: !postgresAvailable });
analyticsContract('PGlite on disk', openPGliteFixture);
