import { analyticsOpenApiPaths } from './analytics-routes.js';
import { deadLetterOpenApiPaths } from './dead-letter-routes.js';
import { errorBodySchema } from './error-response.js';
import { eventOpenApiPaths } from './event-routes.js';
import { integrityOpenApiPaths } from './integrity-routes.js';
import { jsonSchemaOf, namedSchemas } from './openapi-parts.js';
import { operationalOpenApiPaths } from './operational-routes.js';

/**
 * The REST shim's OpenAPI 3.1 description, served at `GET /openapi.json`: the paths each route
 * module declares beside its routes, and the schemas they name, generated from zod.
 */
export function buildOpenApiDocument(version: string) {
  const paths = {
    ...eventOpenApiPaths,
    ...analyticsOpenApiPaths,
    ...integrityOpenApiPaths,
    ...deadLetterOpenApiPaths,
    ...operationalOpenApiPaths,
  };
  // Named once the route modules above have registered theirs; the error body always.
  const schemas: Record<string, unknown> = { Error: jsonSchemaOf(errorBodySchema, 'output') };
  for (const [schema, { name, io }] of namedSchemas) schemas[name] = jsonSchemaOf(schema, io);
  return {
    openapi: '3.1.0',
    info: {
      title: 'auditgraph REST API',
      version,
      description:
        'The logging-service v2 endpoints, compatible with its callers. GraphQL at /graphql offers the same and more.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: '/', description: 'The service that serves this document.' }],
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'The same API key, as `Authorization: Bearer <key>`.',
        },
      },
      schemas,
    },
    paths,
  };
}
