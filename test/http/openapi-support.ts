import { createAnalyticsRoutes } from '../../src/http/analytics-routes.js';
import { createDeadLetterRoutes } from '../../src/http/dead-letter-routes.js';
import { createIntegrityRoutes } from '../../src/http/integrity-routes.js';
import { createOperationalRoutes } from '../../src/http/operational-routes.js';
import { createRestRoutes } from '../../src/http/rest-routes.js';
import type { Route } from '../../src/http/server.js';

export type JsonSchema = Record<string, unknown>;

export interface Parameter {
  name: string;
  in: 'query' | 'path';
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  operationId?: string;
  security?: unknown;
  parameters?: Parameter[];
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

/** Thrown by every service method: a handler that reaches one has accepted its request. */
export class ReachedService extends Error {}

/** A service whose every method throws {@link ReachedService}. */
const stub = new Proxy(
  {},
  {
    get: () => () => {
      throw new ReachedService();
    },
  },
) as never;

/**
 * The REST routes a serving process answers, as src/app/roles.ts composes them (GraphQL aside),
 * over services that answer nothing.
 */
export function restRoutes(): Route[] {
  return [
    ...createRestRoutes({ ingest: stub, events: stub, version: '0.0.0' }),
    ...createAnalyticsRoutes(stub),
    ...createIntegrityRoutes(stub),
    ...createDeadLetterRoutes(stub),
    ...createOperationalRoutes({ version: '0.0.0', readiness: [], metrics: stub }),
  ];
}

export function documentedOperations(
  document: OpenApiDocument,
): Array<{ method: string; path: string; operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]) => ({ method: method.toUpperCase(), path, operation })),
  );
}
