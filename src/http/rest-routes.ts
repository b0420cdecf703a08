import type { IngestService } from '../ingest/ingest-service.js';
import type { EventQueries } from '../query/event-queries.js';
import { createEventRoutes } from './event-routes.js';
import { buildOpenApiDocument } from './openapi.js';
import { createOpenApiRoute } from './operational-routes.js';
import type { Route } from './server.js';

/**
 * The REST shim a serving process answers: the spec's event routes and `GET /openapi.json`
 * describing every REST route (analytics, integrity, dead letters and operational ones included,
 * which the composition root adds beside these). The worker's metrics port serves none of them.
 */
export function createRestRoutes(deps: {
  ingest: IngestService;
  events: EventQueries;
  version: string;
}): Route[] {
  return [...createEventRoutes(deps), createOpenApiRoute(buildOpenApiDocument(deps.version))];
}
