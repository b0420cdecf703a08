import { openPGliteFixture, openPostgresFixture } from '../support/databases.js';
import { postgresAvailable } from '../support/services.js';
import { eventStoreContract } from './event-store.contract.js';

eventStoreContract('PostgreSQL', openPostgresFixture, { skip: !postgresAvailable });
eventStoreContract('PGlite on disk', openPGliteFixture);
